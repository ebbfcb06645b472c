import { appendFileSync } from 'node:fs';
import { BreakwaterError } from '../errors.js';

/** One break-glass change: who, when, why, until (issue 3). */
export interface AuditEntry {
  /** ISO 8601. */
  at: string;
  actor: string;
  /** `bypass-expired`: the bypass reached its TTL and reverted by itself (actor `ttl`). */
  action: 'bypass-authn' | 'restore-authn' | 'bypass-expired' | 'lift-flapping-ban' | 'node-drain';
  /** The listener a break-glass change is for (absent for process-wide admission actions). */
  listener?: string;
  /** lift-flapping-ban: `client_id` or `address`, and the banned key. */
  scope?: string;
  key?: string;
  reason?: string;
  /** node-drain: clients evicted per second. */
  ratePerSec?: number;
  /** ISO 8601: when a bypass ends by itself. */
  until?: string;
}

/**
 * The broker's minimal audit trail: JSON lines in `<dataDir>/audit.log` (mode 0600). Appended
 * synchronously before the change takes effect, so there is never an unaudited bypass: if the
 * line cannot be written the change is refused (BW_ERR_AUDIT_LOG). Changes are rare (operator
 * actions), so a synchronous append costs nothing that matters. The control plane keeps a fuller
 * audit log (packages/control); this one exists so a broker without it still has a record.
 */
export class AuditLog {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  append(entry: AuditEntry): void {
    try {
      appendFileSync(this.path, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    } catch (err) {
      throw new BreakwaterError('BW_ERR_AUDIT_LOG', this.path, { cause: err });
    }
  }
}
