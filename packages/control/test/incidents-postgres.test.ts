import { postgresDriver } from './harness.js';
import { incidentsSuite } from './incidents-suite.js';

incidentsSuite(postgresDriver);
