import { type Static, type TOptional, Type } from '@sinclair/typebox';

/**
 * The `alerts:` section of breakwater.yaml (issue 7). The rules themselves (expressions, default
 * thresholds, runbooks) live in @breakwater/control; the ids are listed here so a misspelt rule
 * id in the config is an error naming the key, not an override that silently does nothing.
 * control checks at compile time that its built-in rules cover exactly these ids.
 */
export const alertRuleIds = [
  'connection-attempts-doubling',
  'auth-failure-ratio',
  'auth-backend-latency',
  'auth-backend-breaker-open',
  'zombie-sockets',
  'open-sockets-high',
  'fd-usage-high',
  'new-connection-burst',
  'connected-devices-drop',
  'ota-gate-failed',
  'telemetry-validation-failures',
  'message-rate-over-budget',
] as const;
export type AlertRuleId = (typeof alertRuleIds)[number];

export const alertSeverities = ['critical', 'warning', 'info'] as const;

const severity = (description: string) =>
  Type.Unsafe<(typeof alertSeverities)[number]>({ type: 'string', enum: [...alertSeverities], description });

/** Every field optional: an override replaces the rule's default only where it is set. */
export const alertRuleOverrideSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'false turns the rule off.' })),
    threshold: Type.Optional(
      Type.Number({ minimum: 0, description: "The rule's threshold, in the unit of its expression." }),
    ),
    windowSec: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 3600,
        description: 'Look-back window of the expression, seconds.',
      }),
    ),
    forSec: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3600, description: 'Abnormal this long before firing, seconds.' }),
    ),
    clearSec: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3600, description: 'Normal this long before resolving, seconds.' }),
    ),
    minVolume: Type.Optional(
      Type.Number({
        minimum: 0,
        description: 'Baseline floor: below this volume the rule stays quiet (e.g. attempts/s).',
      }),
    ),
    severity: Type.Optional(severity('Severity of the events and of the incident they open.')),
  },
  { additionalProperties: false },
);

export const alertWebhookSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https?://', description: 'Receives a JSON POST per alert event.' }),
    headers: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: 'Extra request headers (e.g. authorization).',
      }),
    ),
    minSeverity: Type.Unsafe<(typeof alertSeverities)[number]>({
      type: 'string',
      enum: [...alertSeverities],
      default: 'info',
      description: 'Least severe event sent.',
    }),
    maxAttempts: Type.Integer({ minimum: 1, maximum: 50, default: 8, description: 'Tries per event.' }),
    timeoutMs: Type.Integer({ minimum: 100, default: 5000, description: 'Per request.' }),
    queueSize: Type.Integer({
      minimum: 1,
      default: 1000,
      description: 'Events waiting for delivery; beyond it the oldest is dropped (and counted).',
    }),
  },
  { additionalProperties: false },
);

export const alertsConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Evaluate the built-in rules in-process.' }),
    historySec: Type.Integer({
      minimum: 60,
      maximum: 86_400,
      default: 3600,
      description: 'Seconds of per-second metric history kept (GET /api/v1/metrics/series).',
    }),
    rules: Type.Object(
      Object.fromEntries(alertRuleIds.map((id) => [id, Type.Optional(alertRuleOverrideSchema)])) as Record<
        AlertRuleId,
        TOptional<typeof alertRuleOverrideSchema>
      >,
      {
        additionalProperties: false,
        default: {},
        description: 'Overrides per built-in rule id (`breakwater export prometheus-rules` shows them).',
      },
    ),
    log: Type.Boolean({ default: true, description: 'Log every alert event (pino).' }),
    webhooks: Type.Array(alertWebhookSchema, { default: [], description: 'Webhook receivers.' }),
  },
  { additionalProperties: false, default: {} },
);

export type AlertsConfig = Static<typeof alertsConfigSchema>;
export type AlertRuleOverride = Static<typeof alertRuleOverrideSchema>;
export type AlertWebhookConfig = Static<typeof alertWebhookSchema>;
