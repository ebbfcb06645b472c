/**
 * JSON schemas (TypeBox) of the campaign routes, the request → domain conversions, and the
 * views. Waves are numbered from 1 in the API (`currentWave: 2` = the second wave); storage
 * counts from 0, and the views convert.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { iso, isoOrNull } from '../http/context.js';
import { Limit, Reason } from '../http/schemas.js';
import { FIRMWARE_PATTERN, SelectorSchema } from '../selector.js';
import { DEFAULT_GATE } from './drafts.js';
import {
  type Artifact,
  type CampaignRecord,
  campaignStates,
  type DeviceJobRecord,
  type Gate,
  jobStates,
  type WaveSpec,
} from './types.js';
import type { WaveSummary } from './wave-summaries.js';

const strict = { additionalProperties: false } as const;
const Iso = Type.String({ description: 'ISO 8601 timestamp (UTC).' });
const NullableIso = Type.Union([Iso, Type.Null()]);
export const NullableString = Type.Union([Type.String(), Type.Null()]);
const MAX_MS = 7 * 24 * 3600_000;

const literalUnion = <T extends readonly string[]>(values: T) =>
  Type.Union(values.map((v) => Type.Literal(v)));

const ArtifactSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https?://', maxLength: 2048, description: 'http(s) URL of the artifact.' }),
    version: Type.String({ pattern: FIRMWARE_PATTERN, description: 'Firmware version it installs.' }),
    sha256: Type.String({
      pattern: '^[0-9a-fA-F]{64}$',
      description: 'SHA-256 of the artifact, 64 hex digits.',
    }),
    size: Type.Optional(Type.Integer({ minimum: 0, description: 'Bytes; devices check it exactly.' })),
  },
  strict,
);

const GateInput = Type.Object(
  {
    maxFailureRatio: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: `(failed + rolled-back + timed-out) / wave devices above this halts. Default ${DEFAULT_GATE.maxFailureRatio}.`,
      }),
    ),
    maxOfflineRatio: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: `Devices that updated and are offline at the end of the soak / wave devices above this halts. Default ${DEFAULT_GATE.maxOfflineRatio}.`,
      }),
    ),
    reportTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_MS,
        description: `A notified device silent this long counts as failed. Default ${DEFAULT_GATE.reportTimeoutMs}.`,
      }),
    ),
  },
  strict,
);

const WaveInput = Type.Object(
  {
    percent: Type.Number({
      exclusiveMinimum: 0,
      maximum: 100,
      description: 'Cumulative share of the targets.',
    }),
    minDevices: Type.Optional(Type.Integer({ minimum: 0, description: 'Cumulative minimum device count.' })),
    soakMs: Type.Optional(
      Type.Integer({ minimum: 0, maximum: MAX_MS, description: 'Healthy time after the wave finished.' }),
    ),
    gate: Type.Optional(GateInput),
  },
  strict,
);

const Waves = Type.Array(WaveInput, { minItems: 1, maxItems: 20 });

export const CreateCampaignBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    artifact: ArtifactSchema,
    selector: SelectorSchema,
    waves: Waves,
    gate: Type.Optional(GateInput),
    reason: Type.Optional(Reason),
  },
  strict,
);

export const ReasonBody = Type.Object({ reason: Type.Optional(Reason) }, strict);

export const RollbackBody = Type.Object(
  {
    reason: Type.Optional(Reason),
    artifacts: Type.Optional(
      Type.Array(ArtifactSchema, {
        minItems: 1,
        maxItems: 20,
        description: 'Artifacts of the previous versions; default: the newest campaign that shipped each.',
      }),
    ),
    waves: Type.Optional(Waves),
    gate: Type.Optional(GateInput),
    start: Type.Optional(
      Type.Boolean({ description: 'Start the rollback campaigns at once (default true).' }),
    ),
  },
  strict,
);

export const OtaHaltBody = Type.Object(
  {
    campaignId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'Default: every running campaign.' }),
    ),
    reason: Reason,
  },
  strict,
);

export const CampaignIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, strict);

const GateView = Type.Object({
  maxFailureRatio: Type.Number(),
  maxOfflineRatio: Type.Number(),
  reportTimeoutMs: Type.Integer(),
});

export const CampaignView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  state: literalUnion(campaignStates),
  artifact: Type.Object({
    url: Type.String(),
    version: Type.String(),
    sha256: Type.String(),
    size: Type.Union([Type.Integer(), Type.Null()]),
  }),
  selector: Type.Object({}, { additionalProperties: true }),
  waves: Type.Array(
    Type.Object({
      percent: Type.Number(),
      minDevices: Type.Integer(),
      soakMs: Type.Integer(),
      gate: Type.Object({}, { additionalProperties: true }),
    }),
  ),
  gate: GateView,
  currentWave: Type.Union([Type.Integer(), Type.Null()], { description: '1-based; null before start.' }),
  targetCount: Type.Integer(),
  haltReason: NullableString,
  haltedBy: Type.Union([Type.String(), Type.Null()], { description: '`system` when a gate halted it.' }),
  haltedAt: NullableIso,
  rollbackOf: NullableString,
  createdAt: Iso,
  createdBy: Type.String(),
  startedAt: NullableIso,
  completedAt: NullableIso,
  updatedAt: Iso,
});

const StateCounts = Type.Object(
  Object.fromEntries(jobStates.map((s) => [s, Type.Optional(Type.Integer())])) as Record<string, TSchema>,
);

const WaveView = Type.Object({
  wave: Type.Integer(),
  percent: Type.Number(),
  soakMs: Type.Integer(),
  gate: GateView,
  devices: Type.Integer(),
  states: StateCounts,
  failureRatio: Type.Number(),
});

export const CampaignDetail = Type.Object({
  campaign: CampaignView,
  waves: Type.Array(WaveView),
  states: StateCounts,
});

export const JobView = Type.Object({
  deviceId: Type.String(),
  wave: Type.Integer(),
  state: literalUnion(jobStates),
  jobId: NullableString,
  attempt: Type.Integer(),
  previousVersion: NullableString,
  notifiedAt: NullableIso,
  lastReportAt: NullableIso,
  progress: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: NullableString }), Type.Null()]),
});

export const HaltView = Type.Object({
  campaignId: Type.String(),
  name: Type.String(),
  previousState: Type.String(),
  state: Type.String(),
  cancelledNotifications: Type.Integer(),
  toldToStop: Type.Integer(),
  devicesReached: Type.Integer(),
});

export const ListQuery = Type.Object(
  {
    state: Type.Optional(literalUnion(campaignStates)),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400 })),
  },
  strict,
);

export const JobsQuery = Type.Object(
  {
    wave: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
    state: Type.Optional(literalUnion(jobStates)),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400 })),
  },
  strict,
);

export function gateOf(input: Static<typeof GateInput> | undefined, base: Gate): Gate {
  return { ...base, ...(input ?? {}) };
}

export function wavesOf(input: Static<typeof Waves>): WaveSpec[] {
  return input.map((w) => ({
    percent: w.percent,
    minDevices: w.minDevices ?? 0,
    soakMs: w.soakMs ?? 0,
    gate: { ...(w.gate ?? {}) },
  }));
}

export function artifactOf(a: Static<typeof ArtifactSchema>): Artifact {
  return { url: a.url, version: a.version, sha256: a.sha256.toLowerCase(), size: a.size ?? null };
}

export function campaignView(c: CampaignRecord): Static<typeof CampaignView> {
  return {
    id: c.id,
    name: c.name,
    state: c.state,
    artifact: c.artifact,
    selector: c.selector as Record<string, unknown>,
    waves: c.waves,
    gate: c.gate,
    currentWave: c.currentWave === null ? null : c.currentWave + 1,
    targetCount: c.targetCount,
    haltReason: c.haltReason,
    haltedBy: c.haltedBy,
    haltedAt: isoOrNull(c.haltedAt),
    rollbackOf: c.rollbackOf,
    createdAt: iso(c.createdAt),
    createdBy: c.createdBy,
    startedAt: isoOrNull(c.startedAt),
    completedAt: isoOrNull(c.completedAt),
    updatedAt: iso(c.updatedAt),
  };
}

export function jobView(j: DeviceJobRecord): Static<typeof JobView> {
  return {
    deviceId: j.deviceId,
    wave: j.wave + 1,
    state: j.state,
    jobId: j.jobId,
    attempt: j.attempt,
    previousVersion: j.previousVersion,
    notifiedAt: isoOrNull(j.notifiedAt),
    lastReportAt: isoOrNull(j.lastReportAt),
    progress: j.progress,
    error: j.errorCode === null ? null : { code: j.errorCode, message: j.errorMessage },
  };
}

function waveView(w: WaveSummary): Static<typeof WaveView> {
  const { index, ...rest } = w;
  return { wave: index + 1, ...rest };
}

/** Device counts per job state over every wave. */
function totals(waves: readonly WaveSummary[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const w of waves) for (const [s, n] of Object.entries(w.states)) out[s] = (out[s] ?? 0) + (n ?? 0);
  return out;
}

/** `GET /v1/campaigns/:id` (and the answer of `start`). */
export function campaignDetailView(
  c: CampaignRecord,
  waves: readonly WaveSummary[],
): Static<typeof CampaignDetail> {
  return { campaign: campaignView(c), waves: waves.map(waveView), states: totals(waves) };
}
