import { postgresDriver } from './harness.js';
import { otaApiSuite } from './ota-api-suite.js';

otaApiSuite(postgresDriver);
