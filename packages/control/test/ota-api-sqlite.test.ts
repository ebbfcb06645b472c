import { sqliteDriver } from './harness.js';
import { otaApiSuite } from './ota-api-suite.js';

otaApiSuite(sqliteDriver);
