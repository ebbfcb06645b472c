import { apiSuite } from './api-suite.js';
import { postgresDriver } from './harness.js';

apiSuite(postgresDriver);
