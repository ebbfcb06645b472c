import type { Clock } from '@breakwater/broker';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AuditEntry, AuditRepository } from '../audit/model.js';
import type { ApiKeyRole } from '../auth/model.js';
import type { AttemptLimiter } from '../devices/rate-limit.js';
import { ApiError } from '../errors.js';
import type { FleetBroker } from '../fleet-broker.js';
import type { ControlStorage } from '../storage/types.js';
import type { TokenIssuer } from '../tokens/issuer.js';

/** Who may call a route: nobody needs a key (`public`), or at least this role. */
export type Access = 'public' | ApiKeyRole;

export interface Actor {
  id: string;
  name: string;
  role: ApiKeyRole;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Required on every control-plane route (enforced by the auth hook). */
    access?: Access;
    /** Prefix for body field paths in validation errors (`rows` → `rows[3].id`). */
    bodyFieldPrefix?: string;
  }
  interface FastifyRequest {
    actor: Actor | null;
  }
}

/** What the route modules share. */
export interface RouteContext {
  storage: ControlStorage;
  clock: Clock;
  issuer: TokenIssuer;
  limiter: AttemptLimiter;
  deviceTokenTtlSec: number;
  /** The broker the kill switches act on; null when the control plane runs without one. */
  fleet: FleetBroker | null;
  logger: Logger | null;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : iso(ms);
}

/** The audit "why": `reason` in the body, else the `x-breakwater-reason` header. */
export function reasonOf(request: FastifyRequest): string | null {
  const fromBody = (request.body as { reason?: unknown } | null | undefined)?.reason;
  if (typeof fromBody === 'string') return fromBody;
  const header = request.headers['x-breakwater-reason'];
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value === '') return null;
  if (value.length > 500) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'x-breakwater-reason must be at most 500 characters', {
      field: 'x-breakwater-reason',
    });
  }
  return value;
}

/** One audit entry for the request's actor, written with the change it describes (same tx). */
export function audit(
  repos: { readonly audit: AuditRepository },
  ctx: RouteContext,
  request: FastifyRequest,
  entry: Pick<AuditEntry, 'action' | 'targetType' | 'targetId'> & { details?: Record<string, unknown> },
): Promise<number> {
  const actor = request.actor;
  return repos.audit.append({
    at: ctx.clock.now(),
    actorId: actor?.id ?? 'anonymous',
    actorName: actor?.name ?? 'anonymous',
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    reason: reasonOf(request),
    details: entry.details ?? null,
  });
}
