import { apiSuite } from './api-suite.js';
import { sqliteDriver } from './harness.js';

apiSuite(sqliteDriver);
