import { type Static, Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { BreakwaterError } from '../../errors.js';

/**
 * Admission-control configuration (issue 3, "Admission control, per listener and global";
 * DESIGN.md §3). The typebox schema is the single source of truth: the TypeScript type is derived
 * from it, and the config module embeds `admissionConfigSchema` under the `admission` key.
 *
 * Why these defaults (an operator of a 10,000-device fleet should not need to touch them):
 * - **rate 1,000 attempts/s per listener, burst 2,000**: the SDK's "fleet" reconnect profile
 *   (DESIGN.md §3) spreads a mass reconnect uniformly over 5–15 s, so 10,000 devices arrive at
 *   ~1,000/s; the burst absorbs the first second of a naive fleet. A Node process spends ~0.5–1 ms
 *   of CPU per TLS handshake, so 1,000/s leaves the event loop most of a core for traffic.
 * - **global rate 2,000/s, burst 4,000**: two busy listeners (TCP + TLS) at full rate; beyond it
 *   the process itself is the bottleneck whatever the listener split.
 * - **handshakes in progress 500 per listener, 1,000 global**: at 1,000 admits/s and a 100 ms auth
 *   backend round trip ~100 handshakes are in flight; the cap is 5× that, so it only bites when the
 *   auth backend or storage stalls — exactly when piling up more waiting handshakes helps nobody.
 * - **max connections 100,000 global, unlimited per listener**: the fleet size Breakwater targets
 *   per node; `breakwater up` warns when `ulimit -n` is below it plus 10 % (`fdHeadroomWarning`).
 * - **FD refusal at 90 %** of the process limit (DESIGN.md §3), so the last 10 % stay for storage,
 *   logs, the admin API and the refusal answers themselves.
 * - **flapping 15 connects/min per client id → refused for 5 min** (DESIGN.md §3). Per source
 *   address it is **off** by default: thousands of devices can share one carrier-grade NAT
 *   address, and a per-address ban would lock the whole NAT out. Enable it on listeners whose
 *   devices have their own public addresses.
 * - **retry-after 5–15 s** (uniform jitter): the same window as the fleet profile's first retry,
 *   so a server hint never makes a well-behaved device retry sooner than it would have.
 * - **tarpit off**; when on, 1–5 s holds bounded by 1,000 slots (and never more than half the FD
 *   headroom, see AdmissionGate).
 * - **slow start 25 % → 100 % over 30 s** after a drop of ≥ 50 % of the connections, for clients
 *   whose credentials need a backend call: a backend that has just recovered (or a cold cache)
 *   first sees a quarter of the normal admission rate.
 * - **25 % of each rate and burst reserved for local verifiers** (JWT, mTLS, auth-cache hit): the
 *   backend-bound crowd can never take more than 75 %, so however hard it retries, devices that
 *   need no backend call keep getting in — during slow start even more so, since the ramp does
 *   not apply to them. A fleet of 5,000 naive devices all known-good in the cache is back within
 *   5 s with these defaults (tested).
 */

const positiveInt = (def: number, description: string) =>
  Type.Integer({ minimum: 1, default: def, description });
const nonNegInt = (def: number, description: string) =>
  Type.Integer({ minimum: 0, default: def, description });

/** Limits that exist per listener and once more for the whole process. 0 = unlimited. */
export const admissionLimitsSchema = Type.Object(
  {
    rate: nonNegInt(1000, 'CONNECT attempts admitted per second (token refill rate); 0 = no rate limit'),
    burst: positiveInt(2000, 'token bucket capacity: attempts admitted at once after a quiet period'),
    maxHandshakes: nonNegInt(
      500,
      'CONNECTs admitted and not yet answered (auth + session setup); 0 = unlimited',
    ),
    maxConnections: nonNegInt(0, 'accepted sockets (including those without CONNECT yet); 0 = unlimited'),
  },
  { additionalProperties: false },
);
export type AdmissionLimits = Static<typeof admissionLimitsSchema>;

const flapSchema = (maxConnects: number, what: string) =>
  Type.Object(
    {
      maxConnects: nonNegInt(maxConnects, `connects of one ${what} per window before it is refused; 0 = off`),
      windowMs: positiveInt(60_000, 'counting window'),
      banMs: positiveInt(300_000, 'how long a flapping key is refused'),
      maxTracked: positiveInt(
        50_000,
        'most keys tracked at once (memory bound; least recently seen are dropped)',
      ),
    },
    { additionalProperties: false },
  );

/**
 * One listener's overrides (no defaults: omitted keys fall back to `listenerDefaults`). The config
 * module may embed this as `listeners[].admission` and pass it on as `listeners.<name>`.
 */
export const admissionListenerOverrideSchema = Type.Object(
  {
    rate: Type.Optional(Type.Integer({ minimum: 0 })),
    burst: Type.Optional(Type.Integer({ minimum: 1 })),
    maxHandshakes: Type.Optional(Type.Integer({ minimum: 0 })),
    maxConnections: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type AdmissionListenerOverride = Static<typeof admissionListenerOverrideSchema>;

export const admissionConfigSchema = Type.Object(
  {
    /** Process-wide limits, checked in addition to the listener's. */
    global: Type.Object(
      {
        rate: nonNegInt(2000, 'CONNECT attempts admitted per second, all listeners'),
        burst: positiveInt(4000, 'token bucket capacity, all listeners'),
        maxHandshakes: nonNegInt(1000, 'handshakes in progress, all listeners; 0 = unlimited'),
        maxConnections: nonNegInt(100_000, 'accepted sockets, all listeners; 0 = unlimited'),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Limits each listener gets unless `listeners.<name>` overrides them. */
    listenerDefaults: Type.Object(admissionLimitsSchema.properties, {
      additionalProperties: false,
      default: {},
    }),
    /** Per-listener overrides, by listener name. */
    // Built without `default`s: ajv would otherwise fill every omitted key of an override with the
    // built-in default and silently undo a changed `listenerDefaults`.
    listeners: Type.Record(Type.String(), admissionListenerOverrideSchema, { default: {} }),
    fd: Type.Object(
      {
        refuseRatio: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.9,
          description: 'refuse accepts at this share of the FD limit',
        }),
        sampleIntervalMs: positiveInt(
          5000,
          'how often /proc/self/fd is re-counted (between samples accepts/closes are tracked)',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    flapping: Type.Object(
      {
        clientId: Type.Object(flapSchema(15, 'client id').properties, {
          additionalProperties: false,
          default: {},
        }),
        address: Type.Object(flapSchema(0, 'source address').properties, {
          additionalProperties: false,
          default: {},
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    retryAfter: Type.Object(
      {
        minMs: nonNegInt(5000, 'lower bound of the jittered retry-after-ms hint'),
        maxMs: nonNegInt(15_000, 'upper bound of the jittered retry-after-ms hint'),
      },
      { additionalProperties: false, default: {} },
    ),
    tarpit: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: 'hold refused connections before answering' }),
        minMs: nonNegInt(1000, 'shortest hold'),
        maxMs: nonNegInt(5000, 'longest hold'),
        maxSlots: nonNegInt(
          1000,
          'most connections held at once (tarpit and accept-refusal answers together)',
        ),
        acceptAnswerMs: nonNegInt(
          2000,
          'a socket refused at accept may be held this long for its CONNECT so the refusal can be answered; 0 = destroy at once',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    slowStart: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        initialFraction: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.25,
          description: 'share of the backend-bound rate and burst right after an outage',
        }),
        windowMs: positiveInt(30_000, 'time to ramp linearly back to the full rate'),
        dropRatio: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.5,
          description: 'an outage = connections falling by this share of their recent peak',
        }),
        dropWindowMs: positiveInt(30_000, 'the drop must happen within about this long (peak memory)'),
        minPeak: positiveInt(100, 'drops below this many connections are not an outage'),
        onStart: Type.Boolean({
          default: false,
          description: 'begin in slow start (the broker just restarted, the fleet will reconnect)',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    localVerifierReserve: Type.Number({
      minimum: 0,
      // At 1 a backend-bound client could never get in: keep at least a tenth for them.
      maximum: 0.9,
      default: 0.25,
      description: 'share of each rate and burst that clients needing a backend call can never use',
    }),
  },
  { additionalProperties: false, default: {} },
);

export type AdmissionConfig = Static<typeof admissionConfigSchema>;
/** What a user writes: every key optional, at every depth. */
export type AdmissionConfigInput = DeepPartial<AdmissionConfig>;
type DeepPartial<T> = T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false });
const validate = ajv.compile<AdmissionConfig>(admissionConfigSchema);

/**
 * Applies defaults, validates and freezes. Errors name the key (`admission.tarpit.maxMs`), as
 * fastify's initial-config validation does. The input is not mutated.
 */
export function resolveAdmissionConfig(
  input: AdmissionConfigInput = {},
  path = 'admission',
): Readonly<AdmissionConfig> {
  const copy = structuredClone(input) as Record<string, unknown>;
  if (!validate(copy)) {
    const detail = (validate.errors ?? [])
      .map((e) => `${path}${e.instancePath.replaceAll('/', '.')} ${e.message ?? 'is invalid'}`)
      .join('; ');
    throw new BreakwaterError('BW_ERR_CONFIG_INVALID', detail);
  }
  const config = copy as AdmissionConfig;
  const bad: string[] = [];
  if (config.retryAfter.minMs > config.retryAfter.maxMs)
    bad.push(`${path}.retryAfter.minMs must be <= maxMs`);
  if (config.tarpit.minMs > config.tarpit.maxMs) bad.push(`${path}.tarpit.minMs must be <= maxMs`);
  if (bad.length) throw new BreakwaterError('BW_ERR_CONFIG_INVALID', bad.join('; '));
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Every default, resolved once. */
export const defaultAdmissionConfig: Readonly<AdmissionConfig> = resolveAdmissionConfig();
