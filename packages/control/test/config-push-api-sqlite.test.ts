import { configPushApiSuite } from './config-push-api-suite.js';
import { sqliteDriver } from './harness.js';

configPushApiSuite(sqliteDriver);
