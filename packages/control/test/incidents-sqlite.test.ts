import { sqliteDriver } from './harness.js';
import { incidentsSuite } from './incidents-suite.js';

incidentsSuite(sqliteDriver);
