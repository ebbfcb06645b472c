/**
 * The audit log: every state change of the control plane, written in the same transaction as the
 * change (who, what, when, why). Records and repository contract; SQL in
 * storage/sql-repositories.ts.
 */
import type { Page } from '../storage/page.js';

export interface AuditEntry {
  at: number;
  actorId: string;
  actorName: string;
  /** Dotted verb: `device.create`, `apikey.revoke`, `signingkey.rotate`, … */
  action: string;
  targetType: string;
  targetId: string | null;
  reason: string | null;
  details: Record<string, unknown> | null;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
}

export interface AuditFilter {
  actorId?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  since?: number;
  until?: number;
}

export interface AuditRepository {
  append(entry: AuditEntry): Promise<number>;
  /** Newest first. */
  list(filter: AuditFilter, limit: number, cursor: string | null): Promise<Page<AuditRecord>>;
}
