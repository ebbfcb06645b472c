/**
 * Admission control (issue 3): the first stage of the guard's connect path
 * (accept → admission → authn → authz → session). See `AdmissionGate` for the engine contract
 * and README.md for the integration points.
 */

export { TokenBucket } from '../token-bucket.js';
export {
  type AdmissionConfig,
  type AdmissionConfigInput,
  type AdmissionLimits,
  type AdmissionListenerOverride,
  admissionConfigSchema,
  admissionLimitsSchema,
  admissionListenerOverrideSchema,
  defaultAdmissionConfig,
  resolveAdmissionConfig,
} from './config.js';
export { countOpenFds, type FdUsage, fdHeadroomWarning, procFdUsage, readFdLimit } from './fd-usage.js';
export { type FlapLimits, FlapTracker } from './flap-tracker.js';
export { type AdmissionDeps, AdmissionGate, type AdmissionStats } from './gate.js';
export { AdmissionMetrics } from './metrics.js';
export {
  ADMITTED,
  type AdmissionRefusal,
  type AdmissionVerdict,
  isSocketLive,
  RETRY_AFTER_PROPERTY,
  RefusalReason,
  type RefusalScope,
  reasonCodeFor,
  refusalConnack,
} from './verdict.js';
