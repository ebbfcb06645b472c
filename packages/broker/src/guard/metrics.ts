import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Values of the `outcome` label of `breakwater_auth_total` (issue 3). */
export const AuthOutcome = {
  Success: 'success',
  Failure: 'failure',
  Error: 'error',
  CacheHit: 'cache_hit',
  NegativeCacheHit: 'negative_cache_hit',
  StaleAdmit: 'stale_admit',
  /** Refused with 0x89: the backend's gate had no room (adaptive limit or rate ceiling). */
  Busy: 'busy',
  Bypass: 'bypass',
} as const;
export type AuthOutcomeValue = (typeof AuthOutcome)[keyof typeof AuthOutcome];

/**
 * The guard's authentication metrics. Registered into the broker's registry (BrokerMetrics
 * .registry) so one `/metrics` shows everything; a separate class so the guard does not edit the
 * broker's metric file.
 */
export class GuardMetrics {
  readonly authTotal: Counter<'listener' | 'method' | 'outcome'>;
  readonly backendDuration: Histogram<'backend'>;
  readonly breakerState: Gauge<'backend'>;
  readonly backendInflight: Gauge<'backend'>;
  readonly backendLimit: Gauge<'backend'>;
  readonly backendWaiting: Gauge<'backend'>;
  readonly backendQueries: Counter<'backend'>;
  readonly backendRejected: Counter<'backend' | 'reason'>;
  readonly bypassActive: Gauge<'listener'>;
  readonly authzDenied: Counter<'action'>;
  readonly authzRules: Gauge;
  readonly authzReloads: Counter<'outcome'>;
  readonly authzRulesFileError: Gauge<'line'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.authTotal = new Counter({
      name: 'breakwater_auth_total',
      help: 'Authentication decisions by listener, method and outcome',
      labelNames: ['listener', 'method', 'outcome'],
      registers,
    });
    this.backendDuration = new Histogram({
      name: 'breakwater_auth_backend_duration_seconds',
      help: 'Latency of auth backend calls (postgres, http), including errors and timeouts',
      labelNames: ['backend'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.breakerState = new Gauge({
      name: 'breakwater_auth_backend_breaker_state',
      help: 'Auth backend circuit breaker: 0 closed, 1 half-open, 2 open',
      labelNames: ['backend'],
      registers,
    });
    this.backendInflight = new Gauge({
      name: 'breakwater_auth_backend_inflight',
      help: 'Auth backend calls in flight',
      labelNames: ['backend'],
      registers,
    });
    this.backendLimit = new Gauge({
      name: 'breakwater_auth_backend_limit',
      help: 'Auth backend calls allowed in flight now (adaptive: follows measured latency)',
      labelNames: ['backend'],
      registers,
    });
    this.backendWaiting = new Gauge({
      name: 'breakwater_auth_backend_waiting',
      help: 'Auth backend calls waiting for a slot under the adaptive limit',
      labelNames: ['backend'],
      registers,
    });
    this.backendQueries = new Counter({
      name: 'breakwater_auth_backend_queries_total',
      help: 'Calls actually sent to an auth backend',
      labelNames: ['backend'],
      registers,
    });
    this.backendRejected = new Counter({
      name: 'breakwater_auth_backend_rejected_total',
      help: 'Backend calls not made, by reason (limit, wait_timeout, breaker_open, rate_limited)',
      labelNames: ['backend', 'reason'],
      registers,
    });
    this.bypassActive = new Gauge({
      name: 'breakwater_auth_bypass_active',
      help: 'Break-glass authentication bypass in force on a listener (1) or not (0)',
      labelNames: ['listener'],
      registers,
    });
    this.authzDenied = new Counter({
      name: 'breakwater_authz_denied_total',
      help: 'Authorization denials by action (publish, subscribe); denied publishes are dropped',
      labelNames: ['action'],
      registers,
    });
    this.authzRules = new Gauge({
      name: 'breakwater_authz_live_rules',
      help: 'Authorization rules in force from the rules file / API',
      registers,
    });
    this.authzReloads = new Counter({
      name: 'breakwater_authz_rules_reloads_total',
      help: 'Rules file loads by outcome (ok, error: the previous rules stay in force)',
      labelNames: ['outcome'],
      registers,
    });
    this.authzRulesFileError = new Gauge({
      name: 'breakwater_authz_rules_file_error',
      help: '1 while the rules file on disk is not in force because of an error at this line (0: the whole file)',
      labelNames: ['line'],
      registers,
    });
  }
}
