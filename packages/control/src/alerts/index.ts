/**
 * Wiring of the alerting part of the control plane: metric history + sampler, the engine, the
 * log and webhook notifiers, and the background service that ticks them once per second.
 */
import type { AlertsConfig, Clock, TimerHandle } from '@breakwater/broker';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { RouteContext } from '../http/context.js';
import { MetricHistory } from '../metrics-history/history.js';
import { metricSeriesRoutes } from '../metrics-history/routes.js';
import { RegistrySampler } from '../metrics-history/sampler.js';
import { AlertEngine } from './engine.js';
import { LogAlertSink } from './log-sink.js';
import { alertRoutes } from './routes.js';
import { resolveRules } from './rules.js';
import { WebhookNotifier } from './webhook.js';

export interface AlertingOptions {
  clock: Clock;
  logger?: Logger | null;
  /** The broker's registry (BrokerMetrics.registry); without it only event rules can fire. */
  registry?: Registry | null;
  /** The `alerts:` config section (defaults apply when absent). */
  config?: Partial<AlertsConfig>;
  /** Tick period (default 1000 ms: per-second history). */
  intervalMs?: number;
}

export interface Alerting {
  engine: AlertEngine;
  history: MetricHistory;
  sampler: RegistrySampler | null;
  webhooks: WebhookNotifier[];
  /** One sample + evaluation now (what the timer does every second). */
  tick(): Promise<void>;
  start(): void;
  close(): Promise<void>;
  routes(app: FastifyInstance, ctx: RouteContext): void;
}

export function createAlerting(options: AlertingOptions): Alerting {
  const { clock } = options;
  const logger = options.logger ?? null;
  const config = options.config ?? {};
  const enabled = config.enabled ?? true;
  const history = new MetricHistory({ retentionSec: config.historySec ?? 3600 });
  const sampler = options.registry ? new RegistrySampler(options.registry, history) : null;
  const engine = new AlertEngine({
    rules: resolveRules(config.rules),
    history,
    now: () => clock.now(),
    logger,
  });
  if (logger && (config.log ?? true)) engine.subscribe(new LogAlertSink(logger));
  const webhooks = (config.webhooks ?? []).map((w) => {
    const notifier = new WebhookNotifier({ ...w, clock, logger });
    engine.subscribe(notifier);
    return notifier;
  });

  let timer: TimerHandle | null = null;
  let ticking = false;
  async function tick(): Promise<void> {
    if (ticking) return; // a slow scrape skips a second rather than piling up
    ticking = true;
    try {
      const now = clock.now();
      if (sampler) await sampler.sample(now);
      if (enabled) engine.evaluate(now);
    } catch (err) {
      logger?.error({ err }, 'alert tick failed');
    } finally {
      ticking = false;
    }
  }

  return {
    engine,
    history,
    sampler,
    webhooks,
    tick,
    start() {
      if (timer === null) timer = clock.setInterval(() => void tick(), options.intervalMs ?? 1000);
    },
    async close() {
      if (timer !== null) clock.clearInterval(timer);
      timer = null;
      await Promise.all(webhooks.map((w) => w.close()));
    },
    routes(app, ctx) {
      alertRoutes(app, ctx, engine);
      metricSeriesRoutes(app, ctx, history);
    },
  };
}

export type { ActiveAlert, AlertEngineOptions, RaiseInput } from './engine.js';
export { AlertEngine } from './engine.js';
export { type ExportOptions, grafanaDashboard, prometheusRules, prometheusRulesYaml } from './export.js';
export { LogAlertSink } from './log-sink.js';
export {
  type AlertRuleDefinition,
  builtinRules,
  type ResolvedRule,
  type RuleParams,
  resolveRules,
} from './rules.js';
export type { AlertEvent, AlertSeverity, AlertSink, IncidentType } from './types.js';
export { WebhookNotifier, type WebhookNotifierOptions, type WebhookStats } from './webhook.js';
