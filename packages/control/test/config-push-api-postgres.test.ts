import { configPushApiSuite } from './config-push-api-suite.js';
import { postgresDriver } from './harness.js';

configPushApiSuite(postgresDriver);
