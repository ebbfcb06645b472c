import { type Static, Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { authzActions, authzPermissions, compileRules } from './authz-rules.js';
import { GuardError } from './errors.js';

/**
 * The guard's configuration (the `guard` section of breakwater.yaml), as a TypeBox fragment that
 * the config module includes. Authenticators are grouped by type and named; a listener's `authn`
 * is an ordered list of those names. Grouping by type (instead of a `oneOf` on a `type` field)
 * keeps ajv's `useDefaults` working everywhere: ajv ignores defaults inside oneOf/anyOf.
 *
 * Every object rejects unknown keys and every optional section defaults to `{}` so nested defaults
 * apply, as in ../config/schema.ts.
 */

const strict = { additionalProperties: false } as const;

function stringEnum<const T extends readonly string[]>(
  values: T,
  options: { default?: T[number]; description?: string } = {},
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' });

export const BreakerSchema = Type.Object(
  {
    windowMs: Type.Integer({
      minimum: 100,
      default: 10_000,
      description: 'Sliding window for the error ratio.',
    }),
    minRequests: Type.Integer({
      minimum: 1,
      default: 20,
      description: 'Calls in the window before it may trip.',
    }),
    errorRatio: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.5 }),
    openMs: Type.Integer({
      minimum: 1,
      default: 5_000,
      description: 'First open period (doubles per failed probe).',
    }),
    maxOpenMs: Type.Integer({ minimum: 1, default: 60_000 }),
    halfOpenProbes: Type.Integer({ minimum: 1, default: 1 }),
  },
  { ...strict, default: {} },
);

/**
 * Protections in front of a backend that can fail (postgres, http). Issue 11 replaced the fixed
 * defaults (16 in flight, 45 queries/s) — which paced a healthy Postgres that answers thousands of
 * queries a second to 45, so a 12,000-device cold start took minutes — by an adaptive limit on
 * calls in flight (AdaptiveLimit): it grows while latency stays within `adaptive.tolerance` × the
 * no-load latency and shrinks when latency rises or calls time out. The breaker stays; a fixed
 * calls/s ceiling is still there for operators who want one (`ratePerSec`), off by default.
 */
export const BackendLimitsSchema = Type.Object(
  {
    maxInFlight: Type.Integer({
      minimum: 1,
      default: 64,
      description:
        'Ceiling of the adaptive limit on calls in flight (postgres: also at most its poolSize: more would only queue in the pool). Formerly a fixed 16: a fixed bulkhead is either too low for a healthy backend or too high for a sick one.',
    }),
    adaptive: Type.Object(
      {
        initial: Type.Integer({
          minimum: 1,
          default: 4,
          description: 'Limit at start and after the breaker closes.',
        }),
        min: Type.Integer({ minimum: 1, default: 1, description: 'Floor of the limit.' }),
        tolerance: Type.Number({
          minimum: 1,
          default: 1.5,
          description:
            'Latency up to this multiple of the no-load latency counts as healthy (the limit may grow).',
        }),
        smoothing: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.2,
          description: 'Weight of each new estimate: lower is steadier, higher reacts faster.',
        }),
        baselineWindowMs: Type.Integer({
          minimum: 100,
          default: 5_000,
          description:
            'No-load latency = the lowest of the last one or two windows: a backend slow for good is re-baselined within 2 windows.',
        }),
        backoffRatio: Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.9,
          description: 'Limit multiplier on a timeout.',
        }),
      },
      { ...strict, default: {} },
    ),
    queue: Type.Object(
      {
        maxWaiting: Type.Integer({
          minimum: 0,
          default: 1_000,
          description: 'Calls that may wait for a slot (0: refuse at once when at the limit).',
        }),
        maxWaitMs: Type.Integer({
          minimum: 1,
          default: 1_000,
          description:
            'Longest wait; a call whose estimated wait is longer is refused at once (0x89, retry hint).',
        }),
      },
      { ...strict, default: {} },
    ),
    ratePerSec: Type.Number({
      minimum: 0,
      default: 0,
      description:
        'Optional operator ceiling: the backend never sees more than burst + ratePerSec × seconds calls. 0 = none. Formerly 45: it paced a healthy Postgres to 45 logins/s, so a 12,000-device cold start took minutes; the adaptive limit now follows what the backend shows it can serve.',
    }),
    burst: Type.Integer({
      minimum: 1,
      default: 10,
      description:
        'With ratePerSec: calls banked while idle, on top of the rate in the first second of a wave.',
    }),
    timeoutMs: Type.Integer({
      minimum: 1,
      default: 2_000,
      description: 'A slower answer counts as an error (and cuts the limit).',
    }),
    breaker: BreakerSchema,
  },
  { ...strict, default: {} },
);

export const jwtAlgorithms = [
  'EdDSA',
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
] as const;

export const JwtAuthSchema = Type.Object(
  {
    jwksUrl: Type.Optional(
      Type.String({ pattern: '^https?://', description: 'JWKS endpoint (fetched at start).' }),
    ),
    publicKeyFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM public key (SPKI).' })),
    // `none` and HMAC algorithms are not in the enum: a broker must verify with public keys only.
    algorithms: Type.Array(stringEnum(jwtAlgorithms), {
      minItems: 1,
      uniqueItems: true,
      default: ['EdDSA', 'ES256', 'RS256'],
    }),
    issuer: Type.Optional(Type.String({ minLength: 1 })),
    audience: Type.Optional(Type.String({ minLength: 1 })),
    clockSkewSec: Type.Integer({ minimum: 0, maximum: 3600, default: 30 }),
    subjectClaim: Type.Union([Type.String({ minLength: 1 }), Type.Literal(false)], {
      default: 'sub',
      description: 'Claim that must equal the client id; false disables the check.',
    }),
    tokenField: stringEnum(['password', 'username'] as const, { default: 'password' }),
    refreshIntervalSec: Type.Integer({ minimum: 10, default: 900, description: 'Background JWKS refresh.' }),
    maxKeyAgeSec: Type.Integer({
      minimum: 60,
      default: 6 * 3600,
      description: 'Keys older than this (refreshes kept failing) are still used; logged as stale.',
    }),
    fetchTimeoutMs: Type.Integer({ minimum: 1, default: 5_000 }),
    unknownKidRefreshSec: Type.Integer({
      minimum: 1,
      default: 60,
      description: 'Min gap between kid-miss refreshes.',
    }),
    disconnectOnExpiry: Type.Boolean({ default: true }),
  },
  strict,
);

export const PasswordFileAuthSchema = Type.Object(
  {
    path: Type.String({ minLength: 1 }),
    pollIntervalMs: Type.Integer({ minimum: 50, default: 2_000, description: 'stat() poll for changes.' }),
  },
  strict,
);

export const hashAlgorithms = ['sha256', 'sha512', 'pbkdf2'] as const;

export const PostgresAuthSchema = Type.Object(
  {
    connectionString: Type.Optional(Type.String({ minLength: 1 })),
    host: Type.String({ default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 5432 }),
    user: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    database: Type.Optional(Type.String()),
    query: Type.String({
      default: 'SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = $1 LIMIT 1',
      description: 'Parameterised; columns password_hash, optional salt and is_superuser.',
    }),
    params: Type.Array(stringEnum(['username', 'clientId'] as const), { default: ['username'] }),
    poolSize: Type.Integer({
      minimum: 1,
      default: 8,
      description:
        'Connections to PostgreSQL; also the ceiling of calls in flight (limits.maxInFlight caps it further). Formerly 4: a 2 ms lookup on 8 connections serves ~4,000 logins/s, enough for a 12,000-device cold start in seconds, and stays far below PostgreSQL max_connections (100).',
    }),
    statementTimeoutMs: Type.Integer({ minimum: 1, default: 1_500 }),
    connectTimeoutMs: Type.Integer({ minimum: 1, default: 2_000 }),
    /**
     * For rows whose password_hash is not self-describing (EMQX's column layout: the digest in
     * password_hash, the salt in the salt column): EMQX's `password_hash_algorithm`. Self-describing
     * hashes ($7$, $2b$, $pbkdf2-…, pbkdf2_sha256$…, $scrypt$) ignore it. docs/password-hashes.md.
     */
    hash: Type.Object(
      {
        algorithm: stringEnum(hashAlgorithms, {
          default: 'sha256',
          description:
            'EMQX name: sha256/sha512 digest of the salted password, or pbkdf2 with the salt column as salt',
        }),
        saltPosition: stringEnum(['prefix', 'suffix', 'disable'] as const, {
          default: 'prefix',
          description:
            'sha256/sha512: salt ++ password (prefix, EMQX default), password ++ salt (suffix), or no salt',
        }),
        encoding: stringEnum(['hex', 'base64'] as const, {
          default: 'hex',
          description: 'how password_hash stores the digest (EMQX: hex, compared case-insensitively)',
        }),
        macFun: stringEnum(['sha1', 'sha256', 'sha512'] as const, {
          default: 'sha256',
          description: 'pbkdf2: the HMAC hash (EMQX mac_fun; `sha` there is sha1)',
        }),
        iterations: Type.Integer({
          minimum: 1,
          maximum: 5_000_000,
          default: 4096,
          description: 'pbkdf2: iteration count (EMQX iterations; bounded so one login cannot cost minutes)',
        }),
        dkLength: Type.Optional(
          Type.Integer({
            minimum: 16,
            maximum: 256,
            description: 'pbkdf2: derived key length in bytes (default: the output size of macFun)',
          }),
        ),
      },
      { ...strict, default: {} },
    ),
    limits: BackendLimitsSchema,
  },
  strict,
);

export const HttpAuthSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https?://' }),
    headers: Type.Record(Type.String(), Type.String(), { default: {} }),
    limits: BackendLimitsSchema,
  },
  strict,
);

export const MtlsAuthSchema = Type.Object(
  {
    identityFrom: stringEnum(['cn', 'san-dns', 'san-uri', 'san-email'] as const, { default: 'cn' }),
    requireClientIdMatch: Type.Boolean({ default: true }),
    revokedSerials: Type.Array(Type.String({ pattern: '^[0-9A-Fa-f:]+$' }), { default: [] }),
  },
  strict,
);

export const AnonymousAuthSchema = Type.Object({}, strict);

export const CacheSchema = Type.Object(
  {
    positiveTtlSec: Type.Integer({ minimum: 0, default: 3600 }),
    staleIfErrorSec: Type.Integer({ minimum: 0, default: 24 * 3600 }),
    negativeTtlSec: Type.Integer({ minimum: 0, default: 60 }),
    maxEntries: Type.Integer({ minimum: 1, default: 100_000 }),
    persist: Type.Boolean({ default: true, description: 'Keep known-good entries in the data dir.' }),
  },
  { ...strict, default: {} },
);

const ruleCondition = (description: string) => Type.Optional(Type.String({ minLength: 1, description }));

/**
 * One authorization rule (issue 13). The same shape in the config file, the rules file (one line:
 * `deny subscribe # username=guest`, see authz-rules.ts) and the control-plane API.
 */
export const AuthzRuleSchema = Type.Object(
  {
    permission: stringEnum(authzPermissions, {
      default: 'allow',
      description: 'allow or deny; the first rule that matches decides.',
    }),
    action: stringEnum(authzActions, {
      default: 'all',
      description: 'publish, subscribe, or all (both).',
    }),
    topic: Type.String({
      minLength: 1,
      description: 'Filter (+ and # allowed); %c / {clientId} and %u / {username} are substituted.',
    }),
    clientId: ruleCondition('Only for this client id (exact, or a glob with *).'),
    username: ruleCondition('Only for this username (exact, or a glob with *).'),
    certCn: ruleCondition('Only for this client-certificate common name (exact, or a glob with *).'),
    listener: ruleCondition('Only on this listener.'),
    source: ruleCondition('Only from this address or CIDR (10.0.0.0/8, 2001:db8::/32).'),
  },
  strict,
);

/**
 * A device owns `devices/{id}/…`. Under `$fleet/{id}/…` it only reads what the control plane
 * sends (config, OTA jobs, commands) and writes its reports: were it allowed to publish there, a
 * compromised device could overwrite its own retained desired config or fake an OTA job. It reads
 * the responses to its own requests under `$response/{id}/…` (the default `mqtt.responseInformation`
 * prefix, MQTT 5.0 §4.10), and nobody else's; answering is for services (superusers).
 */
export const defaultAuthzRules = [
  { action: 'all', topic: 'devices/{clientId}/#' },
  { action: 'subscribe', topic: '$response/{clientId}/#' },
  { action: 'subscribe', topic: '$fleet/{clientId}/#' },
  { action: 'publish', topic: '$fleet/{clientId}/config/reported' },
  { action: 'publish', topic: '$fleet/{clientId}/ota/status' },
] as const;

export const AuthzSchema = Type.Object(
  {
    rules: Type.Array(AuthzRuleSchema, {
      default: defaultAuthzRules,
      description:
        "This listener's rules, after the rules file's and guard.authz.rules. Default: each device its own topics.",
    }),
    default: stringEnum(['allow', 'deny'] as const, {
      default: 'deny',
      description: 'Verdict when no rule matches (deny: the rules are an allow-list).',
    }),
    superuserBypass: Type.Boolean({ default: true }),
  },
  { ...strict, default: {} },
);

/** Rules for every listener: the live rules file (hot reload, written by the API) and static ones. */
export const GlobalAuthzSchema = Type.Object(
  {
    rules: Type.Array(AuthzRuleSchema, {
      default: [],
      description: "Checked after the rules file's and before each listener's own rules.",
    }),
    rulesFile: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Rules file, one rule a line, checked first; reloaded on change; PUT /api/v1/authz/rules writes it. Default: <dataDir>/authz/authz.rules.',
      }),
    ),
    reloadDebounceMs: Type.Integer({
      minimum: 0,
      default: 200,
      description: 'Quiet time after the last change to the rules file before it is reloaded.',
    }),
  },
  { ...strict, default: {} },
);

export const ListenerGuardSchema = Type.Object(
  {
    authn: Type.Array(Name, { default: [], description: 'Ordered authenticator names. Empty: refuse all.' }),
    authz: AuthzSchema,
    cache: CacheSchema,
    maxCredentialBytes: Type.Integer({
      minimum: 1,
      default: 4096,
      description: 'Longer usernames/passwords are refused before any hashing or backend call.',
    }),
  },
  strict,
);

export const guardConfigSchema = Type.Object(
  {
    authenticators: Type.Object(
      {
        jwt: Type.Record(Name, JwtAuthSchema, { default: {} }),
        passwordFile: Type.Record(Name, PasswordFileAuthSchema, { default: {} }),
        postgres: Type.Record(Name, PostgresAuthSchema, { default: {} }),
        http: Type.Record(Name, HttpAuthSchema, { default: {} }),
        mtls: Type.Record(Name, MtlsAuthSchema, { default: {} }),
        anonymous: Type.Record(Name, AnonymousAuthSchema, { default: {} }),
      },
      { ...strict, default: {} },
    ),
    authz: GlobalAuthzSchema,
    /** Per listener (by listener name); `*` applies to listeners not named. */
    listeners: Type.Record(Type.String({ minLength: 1 }), ListenerGuardSchema, { default: {} }),
    revoked: Type.Object(
      {
        clientIds: Type.Array(Type.String(), { default: [] }),
        tokenIds: Type.Array(Type.String(), { default: [] }),
        certSerials: Type.Array(Type.String(), { default: [] }),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

export type GuardConfig = Static<typeof guardConfigSchema>;
export type JwtAuthConfig = Static<typeof JwtAuthSchema>;
export type PasswordFileAuthConfig = Static<typeof PasswordFileAuthSchema>;
export type PostgresAuthConfig = Static<typeof PostgresAuthSchema>;
export type HttpAuthConfig = Static<typeof HttpAuthSchema>;
export type MtlsAuthConfig = Static<typeof MtlsAuthSchema>;
export type BackendLimits = Static<typeof BackendLimitsSchema>;
export type CacheConfig = Static<typeof CacheSchema>;
export type AuthzConfig = Static<typeof AuthzSchema>;
export type GlobalAuthzConfig = Static<typeof GlobalAuthzSchema>;
export type ListenerGuardConfig = Static<typeof ListenerGuardSchema>;
export type AuthenticatorType = keyof GuardConfig['authenticators'];

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
// The fragment carries `default: {}` for when it is embedded as a property; ajv's strict mode
// rejects a default at the root, so validate against a copy without it.
const { default: _rootDefault, ...rootSchema } = guardConfigSchema;
const validate = ajv.compile<GuardConfig>(rootSchema);

/**
 * Validates a guard config (a deep copy: the input is not mutated), fills defaults and checks what
 * the schema cannot: authenticator names unique across types, every `authn` name defined, a JWT
 * authenticator with exactly one key source. Throws GuardError BW_ERR_GUARD_CONFIG naming the key.
 */
export function resolveGuardConfig(input: unknown = {}): GuardConfig {
  const config = structuredClone(input ?? {}) as GuardConfig;
  if (!validate(config)) {
    const problems = (validate.errors ?? []).map(
      (e) => `guard${e.instancePath.replaceAll('/', '.')} ${e.message}`,
    );
    throw new GuardError('BW_ERR_GUARD_CONFIG', problems.join('; '));
  }
  const seen = new Map<string, string>();
  for (const [type, group] of Object.entries(config.authenticators)) {
    for (const name of Object.keys(group)) {
      const other = seen.get(name);
      if (other)
        throw new GuardError(
          'BW_ERR_GUARD_CONFIG',
          `authenticator name "${name}" used by ${other} and ${type}`,
        );
      seen.set(name, type);
    }
  }
  for (const [name, jwt] of Object.entries(config.authenticators.jwt)) {
    if (!jwt.jwksUrl === !jwt.publicKeyFile) {
      throw new GuardError(
        'BW_ERR_GUARD_CONFIG',
        `guard.authenticators.jwt.${name}: set exactly one of jwksUrl, publicKeyFile`,
      );
    }
  }
  // Rule values the schema cannot check (CIDR, filter syntax), named by key.
  compileRules(config.authz.rules, 'guard.authz.rules');
  for (const [listener, l] of Object.entries(config.listeners)) {
    compileRules(l.authz.rules, `guard.listeners.${listener}.authz.rules`);
    for (const name of l.authn) {
      if (!seen.has(name)) {
        throw new GuardError(
          'BW_ERR_GUARD_CONFIG',
          `guard.listeners.${listener}.authn: unknown authenticator "${name}"`,
        );
      }
    }
  }
  return config;
}
