/**
 * Creating and reverting revocations: resolve what a request names, store it with its audit
 * entry (one transaction), then act on the broker (enforce.ts). Shared by `POST
 * /api/v1/revocations`, `POST /api/v1/killswitch/revoke` and device deletion.
 */
import { randomBytes } from 'node:crypto';
import type { RevocationEntry } from '@breakwater/broker';
import type { FastifyRequest } from 'fastify';
import type { AuditRepository } from '../audit/model.js';
import type { DeviceRepository } from '../devices/model.js';
import { ApiError } from '../errors.js';
import { audit, type RouteContext, reasonOf } from '../http/context.js';
import { requireTargeted, type Selector } from '../selector.js';
import { denylistEntries, denylistKey } from './denylist.js';
import { enforce, liveVictims, NO_BROKER_WARNING, release } from './enforce.js';
import type { NewRevocation, RevocationKind, RevocationRecord, RevocationRepository } from './types.js';

/** A revocation resolves devices and is stored with its audit entry (one transaction). */
export interface RevocationRepositories {
  readonly devices: DeviceRepository;
  readonly revocations: RevocationRepository;
  readonly audit: AuditRepository;
}

/** What a caller asks for (the request body minus `reason`). */
export interface RevokeInput {
  deviceId?: string;
  selector?: Selector;
  tokenId?: string;
  /** ISO 8601, or `now`. */
  issuedBefore?: string;
}

export interface RevokeOutcome {
  revocation: RevocationRecord;
  matchedDevices: number;
  disconnected: number;
  purgedRetained: number;
  purgedWills: number;
  warnings: string[];
}

/** A revocation resolved and ready to store and enforce. */
interface Plan {
  row: NewRevocation;
  entries: RevocationEntry[];
  /** Live sessions it ends (purged before they are ended). */
  victims: string[];
  /** Revoked devices whose retained messages go too, connected or not. */
  alsoPurge: string[];
  warnings: string[];
}

/** Clock skew allowance for an `issuedBefore` a little ahead of the server's clock. */
const FUTURE_SLACK_MS = 60_000;

function parseIssuedBefore(value: string, now: number): number {
  if (value === 'now') return now;
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(t)) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'issuedBefore must be an ISO 8601 date-time or "now"', {
      field: 'issuedBefore',
    });
  }
  if (t > now + FUTURE_SLACK_MS) {
    throw new ApiError(
      'BW_ERR_API_VALIDATION',
      'issuedBefore is in the future (it would also refuse tokens not minted yet); revoke the device instead',
      { field: 'issuedBefore' },
    );
  }
  return t;
}

/** Which kind of revocation a body asks for; 400 naming the field when it is ambiguous or empty. */
function kindOf(input: RevokeInput): RevocationKind {
  const named = (['deviceId', 'selector', 'tokenId'] as const).filter((k) => input[k] !== undefined);
  if (named.length > 1) {
    throw new ApiError(
      'BW_ERR_API_VALIDATION',
      `name one of deviceId, selector or tokenId, not ${named.join(' and ')}`,
      {
        field: named[1]!,
      },
    );
  }
  if (named[0] === 'tokenId' && input.issuedBefore !== undefined) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'issuedBefore does not combine with tokenId', {
      field: 'issuedBefore',
    });
  }
  if (named.length === 0) {
    if (input.issuedBefore !== undefined) return 'all';
    throw new ApiError(
      'BW_ERR_API_VALIDATION',
      'name what to revoke: deviceId, selector, tokenId, or issuedBefore (alone: every token issued before it)',
      { field: 'deviceId' },
    );
  }
  return named[0] === 'deviceId' ? 'device' : named[0] === 'selector' ? 'selector' : 'token';
}

async function plan(
  repos: RevocationRepositories,
  ctx: RouteContext,
  request: FastifyRequest,
  input: RevokeInput,
  reason: string | null,
): Promise<Plan> {
  const now = ctx.clock.now();
  const kind = kindOf(input);
  const issuedBefore = input.issuedBefore === undefined ? null : parseIssuedBefore(input.issuedBefore, now);
  const warnings: string[] = [];
  let deviceIds: string[] = [];
  if (kind === 'device') {
    deviceIds = [input.deviceId!];
    if (!(await repos.devices.get(input.deviceId!))) {
      warnings.push(`device ${input.deviceId} is not registered; its client id is revoked anyway`);
    }
  } else if (kind === 'selector') {
    requireTargeted(input.selector!);
    deviceIds = await repos.devices.resolve(input.selector!);
    if (deviceIds.length === 0) warnings.push('the selector matches no devices');
  }
  const entries = denylistEntries({ kind, deviceIds, tokenId: input.tokenId ?? null, issuedBefore });
  const fleet = ctx.fleet;
  let victims: string[] = [];
  if (fleet === null) {
    warnings.push(NO_BROKER_WARNING);
  } else {
    const live = liveVictims(fleet, entries);
    victims = live.ids;
    if (live.unmatched) {
      warnings.push('the broker cannot tell which live sessions hold the revoked tokens; none were ended');
    }
  }
  const devicesRevoked = (kind === 'device' || kind === 'selector') && issuedBefore === null;
  const actor = request.actor;
  return {
    row: {
      id: `rev_${randomBytes(8).toString('hex')}`,
      kind,
      deviceId: kind === 'device' ? input.deviceId! : null,
      selector: kind === 'selector' ? input.selector! : null,
      tokenId: input.tokenId ?? null,
      issuedBefore,
      // Devices it names; for token and cutoff-for-all revocations, the sessions it reached.
      deviceIds: kind === 'token' || kind === 'all' ? victims : deviceIds,
      reason,
      createdAt: now,
      createdBy: { id: actor?.id ?? 'system', name: actor?.name ?? 'system' },
    },
    entries,
    victims,
    alsoPurge: devicesRevoked ? deviceIds : [],
    warnings,
  };
}

async function persist(
  tx: RevocationRepositories,
  ctx: RouteContext,
  request: FastifyRequest,
  p: Plan,
  via: string,
): Promise<void> {
  const r = p.row;
  await tx.revocations.insert(r);
  await audit(tx, ctx, request, {
    action: 'revocation.create',
    targetType: 'revocation',
    targetId: r.id,
    details: {
      via,
      kind: r.kind,
      ...(r.deviceId !== null ? { deviceId: r.deviceId } : {}),
      ...(r.selector !== null ? { selector: r.selector } : {}),
      ...(r.tokenId !== null ? { tokenId: r.tokenId } : {}),
      ...(r.issuedBefore !== null ? { issuedBefore: new Date(r.issuedBefore).toISOString() } : {}),
      deviceCount: r.deviceIds.length,
      // The full list is in the revocation (GET /api/v1/revocations/:id); the audit keeps a sample.
      deviceIds: r.deviceIds.slice(0, 100),
    },
  });
}

async function act(ctx: RouteContext, p: Plan): Promise<RevokeOutcome> {
  const base = { disconnected: 0, purgedRetained: 0, purgedWills: 0, warnings: [] as string[] };
  const done =
    ctx.fleet === null ? base : await enforce(ctx.fleet, p.entries, p.victims, p.alsoPurge, ctx.logger);
  const revocation = await ctx.storage.revocations.get(p.row.id);
  ctx.logger?.warn(
    { revocationId: p.row.id, kind: p.row.kind, disconnected: done.disconnected },
    'credentials revoked',
  );
  return {
    revocation: revocation!,
    matchedDevices: p.row.deviceIds.length,
    disconnected: done.disconnected,
    purgedRetained: done.purgedRetained,
    purgedWills: done.purgedWills,
    warnings: [...p.warnings, ...done.warnings],
  };
}

/**
 * Creating and reverting run one at a time per storage (store + broker step together): a revert
 * decides which denylist entries another active revocation still needs, and a revocation being
 * created at that moment must be either fully seen or fully after it.
 */
const queues = new WeakMap<object, Promise<unknown>>();

function serialized<T>(key: object, fn: () => Promise<T>): Promise<T> {
  const run = (queues.get(key) ?? Promise.resolve()).then(fn, fn);
  queues.set(
    key,
    run.catch(() => {}),
  );
  return run;
}

/** Resolve, store (with its audit entry, one transaction), then act on the broker. */
export function createRevocation(
  ctx: RouteContext,
  request: FastifyRequest,
  input: RevokeInput,
  via: 'api' | 'killswitch',
): Promise<RevokeOutcome> {
  return serialized(ctx.storage, async () => {
    const p = await plan(ctx.storage, ctx, request, input, reasonOf(request));
    await ctx.storage.transaction((tx) => persist(tx, ctx, request, p, via));
    return act(ctx, p);
  });
}

/**
 * Device deletion: inside the deleting transaction, records an "issued before now" revocation of
 * the device's tokens (they stay valid JWTs until they expire, and the broker verifies them
 * without asking the registry). Returns the step to run after the commit.
 */
export async function revokeDeletedDeviceTokens(
  tx: RevocationRepositories,
  ctx: RouteContext,
  request: FastifyRequest,
  deviceId: string,
): Promise<{ enforce(): Promise<RevokeOutcome> }> {
  const p = await plan(tx, ctx, request, { deviceId, issuedBefore: 'now' }, 'device deleted');
  p.warnings = p.warnings.filter((w) => !w.startsWith('device '));
  await persist(tx, ctx, request, p, 'device.delete');
  return { enforce: () => act(ctx, p) };
}

export interface RevertOutcome {
  revocation: RevocationRecord;
  /** Denylist entries removed. */
  released: number;
  /** Entries kept because another active revocation still covers them. */
  stillRevoked: number;
  warnings: string[];
}

/** Un-revokes: marks it reverted (audited, one transaction) and releases what nothing else covers. */
export function revertRevocation(
  ctx: RouteContext,
  request: FastifyRequest,
  id: string,
): Promise<RevertOutcome> {
  return serialized(ctx.storage, () => revert(ctx, request, id));
}

async function revert(ctx: RouteContext, request: FastifyRequest, id: string): Promise<RevertOutcome> {
  const actor = request.actor;
  const by = { id: actor?.id ?? 'system', name: actor?.name ?? 'system' };
  const { entries, covered } = await ctx.storage.transaction(async (tx) => {
    const record = await tx.revocations.get(id);
    if (!record) throw new ApiError('BW_ERR_API_NOT_FOUND', `revocation ${id}`);
    if (!(await tx.revocations.revert(id, ctx.clock.now(), by))) {
      throw new ApiError('BW_ERR_API_CONFLICT', `revocation ${id} was already reverted`);
    }
    const deviceIds = await tx.revocations.deviceIds(id);
    const entries = denylistEntries({
      kind: record.kind,
      deviceIds: record.kind === 'device' || record.kind === 'selector' ? deviceIds : [],
      tokenId: record.tokenId,
      issuedBefore: record.issuedBefore,
    });
    const covered = await tx.revocations.coveredElsewhere(id);
    await audit(tx, ctx, request, {
      action: 'revocation.delete',
      targetType: 'revocation',
      targetId: id,
      details: { kind: record.kind, entries: entries.length, stillRevoked: covered.size },
    });
    return { entries, covered };
  });
  const warnings: string[] = [];
  let result = { released: 0, kept: 0 };
  if (ctx.fleet === null)
    warnings.push(NO_BROKER_WARNING.replace('the revocation is stored', 'the change is stored'));
  else if (ctx.fleet.revocations === null)
    warnings.push('the broker runs without authentication: nothing to release');
  else result = release(ctx.fleet, entries, (e) => covered.has(denylistKey(e)));
  return {
    revocation: (await ctx.storage.revocations.get(id))!,
    released: result.released,
    stillRevoked: covered.size,
    warnings,
  };
}
