import { type Static, Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { BreakwaterError } from '../../errors.js';

/**
 * Admission-control configuration (issue 3; reworked by issue 11, "Guard that brings every fleet
 * back"; DESIGN.md §3). The typebox schema is the single source of truth: the TypeScript type is
 * derived from it, and the config module embeds `admissionConfigSchema` under the `admission` key.
 *
 * The rule behind every default: a protection must be invisible while the broker is healthy and
 * adaptive when it is not. An operator of a 10,000-device fleet, whose firmware retries every
 * second with one client id, should not need to touch any of them.
 * - **No fixed connection rate** (`rate: 0` per listener and global). A rate picked in advance is
 *   wrong both ways: 1,000/s refused 75 % of a 10,000-client burst that Mosquitto accepts at
 *   13,000/s on the same machine (issue 11), yet says nothing about what the process can take.
 *   The token buckets stay, as an optional operator ceiling.
 * - **Load-driven refusal instead** (`overload`): new CONNECTs are refused (0x89, tarpitted) while
 *   the event loop is saturated — its mean delay over a 1 s window above 500 ms, until it falls
 *   back below half of that. A 10,000-client burst with no backend raises it to well under that
 *   on this 2-core machine (bench/results/connect-burst.md), while at 500 ms every connected
 *   client's packets already wait half a second. Only while CONNECTs arrive in numbers (≥ 100
 *   over the last two windows): a lone client is never refused because start-up or a GC blocked
 *   the loop.
 * - **handshakes in progress 500 per listener, 1,000 global**: CONNECTs admitted and not yet
 *   answered (waiting for an auth backend, mostly). Past that more waiting helps nobody; the
 *   backend's adaptive limiter (guard config) decides how many of them reach the backend.
 * - **max connections 100,000 global, unlimited per listener**; FD refusal at **90 %** of the
 *   process limit (DESIGN.md §3), so the last 10 % stay for storage, logs, the admin API and the
 *   refusal answers themselves.
 * - **flapping = short sessions, not attempts**: more than 30 sessions of one client id that the
 *   broker accepted and that ended within 10 s without a normal DISCONNECT, in 1 min → refused for
 *   2 min with 0x9F and a retry hint at the ban's end. Refusals never count (the broker's own pacing
 *   must not ban the fleet it paces), nor do clean DISCONNECTs (a conformance suite or a
 *   connect-publish-disconnect script reconnects one id dozens of times a minute) nor the broker's
 *   own kicks (revocation, shutdown, expiry). What is left is the real thing: two devices sharing an
 *   id taking each other over, or a crash loop — each costs a session setup and teardown per turn.
 *   Per source address it is **off**: thousands of devices can share one carrier-grade NAT address.
 * - **retry-after 5–15 s** (uniform jitter): the fleet profile's first-retry window, so a server
 *   hint never makes a well-behaved device retry sooner than it would have.
 * - **tarpit on, 1–5 s holds bounded by 1,000 slots** (and never more than half the FD headroom,
 *   see AdmissionGate): a refused naive device on a fixed 1 s loop comes back every 2–6 s at a
 *   random phase instead of every second in step — the pacing a broker can impose on firmware it
 *   cannot change. Only refusals are held; accepted clients never wait.
 * - **slow start** (25 % → 100 % over 30 s after a ≥ 50 % drop) scales the backend-bound share of
 *   an operator-set rate; with the default `rate: 0` there is nothing to scale and the auth
 *   backend's adaptive limiter (which restarts low after its breaker closes) does that job.
 * - **25 % of an operator-set rate reserved for local verifiers** (JWT, mTLS, auth-cache hit).
 */

const positiveInt = (def: number, description: string) =>
  Type.Integer({ minimum: 1, default: def, description });
const nonNegInt = (def: number, description: string) =>
  Type.Integer({ minimum: 0, default: def, description });

/** Limits that exist per listener and once more for the whole process. 0 = unlimited. */
export const admissionLimitsSchema = Type.Object(
  {
    rate: nonNegInt(
      0,
      'operator ceiling: CONNECT attempts admitted per second (token refill rate); 0 = none: admission follows broker load (`overload`). Formerly 1,000/s: it refused 75 % of a 10,000-client burst that Mosquitto accepts',
    ),
    burst: positiveInt(
      2000,
      'token bucket capacity when `rate` is set: attempts admitted at once after a quiet period',
    ),
    maxHandshakes: nonNegInt(
      500,
      'CONNECTs admitted and not yet answered (auth + session setup); 0 = unlimited',
    ),
    maxConnections: nonNegInt(0, 'accepted sockets (including those without CONNECT yet); 0 = unlimited'),
  },
  { additionalProperties: false },
);
export type AdmissionLimits = Static<typeof admissionLimitsSchema>;

const flapSchema = (maxShortSessions: number, what: string) =>
  Type.Object(
    {
      maxShortSessions: nonNegInt(
        maxShortSessions,
        `short sessions of one ${what} per window before it is banned; 0 = off. Only sessions that got CONNACK 0 and ended early without a clean DISCONNECT count: the broker's own refusals never do (formerly every attempt counted as \`maxConnects\` 15, so the broker's pacing banned the fleet it paced)`,
      ),
      shortSessionMs: positiveInt(
        10_000,
        'an accepted session that ends sooner than this without a normal DISCONNECT counts',
      ),
      windowMs: positiveInt(60_000, 'counting window'),
      banMs: positiveInt(120_000, 'how long a flapping key is refused'),
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
        rate: nonNegInt(0, 'operator ceiling: CONNECT attempts admitted per second, all listeners; 0 = none'),
        burst: positiveInt(4000, 'token bucket capacity when `rate` is set, all listeners'),
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
        clientId: Type.Object(flapSchema(30, 'client id').properties, {
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
    overload: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description:
            'refuse new CONNECTs (0x89) while the event loop is saturated: the broker refuses on measured load, not on a rate picked in advance',
        }),
        maxEventLoopDelayMs: positiveInt(
          500,
          'saturated when the mean event-loop delay over a window exceeds this; clear again below half of it',
        ),
        windowMs: positiveInt(1000, 'event-loop delay averaging window'),
        minConnects: nonNegInt(
          100,
          "refuse for overload only while at least this many CONNECTs arrived in the current and previous window: a saturated loop is the connects' doing only when they arrive in numbers, and a lone client (a test right after start, a device while a GC or start-up blocks the loop) is never refused for load it did not cause",
        ),
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
        enabled: Type.Boolean({
          default: true,
          description:
            'hold refused connections for a jittered time before answering: turns a fleet of fixed 1-s retry loops into a spread-out one without changing the firmware (formerly off)',
        }),
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

/** Keys that existed once, with what replaced them (undici-style hints for old configs). */
const RENAMED: Record<string, string> = {
  maxConnects:
    'renamed to maxShortSessions in issue 11: flapping now counts accepted sessions that end quickly, not connection attempts',
};

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
      .map((e) => {
        const at = `${path}${e.instancePath.replaceAll('/', '.')}`;
        const extra = (e.params as { additionalProperty?: string }).additionalProperty;
        if (e.keyword !== 'additionalProperties' || extra === undefined)
          return `${at} ${e.message ?? 'is invalid'}`;
        const hint = RENAMED[extra];
        return `${at}.${extra} is not a known key${hint ? ` (${hint})` : ''}`;
      })
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
