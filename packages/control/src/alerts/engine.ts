/**
 * The in-process alert engine: evaluates the metric rules against the history once per tick,
 * keeps one state per (rule, labels) and emits `AlertEvent`s to subscribers on transitions only:
 *
 *   inactive --abnormal--> pending --abnormal for `forSec`--> firing (event)
 *   firing --normal for `clearSec`--> inactive (resolved event)
 *
 * A pending alert that sees one normal sample goes back to inactive (as in Prometheus); a firing
 * one needs `clearSec` of normal samples to resolve, so one noisy sample neither fires nor
 * flaps. Event rules (no metric) are driven by `raise()` / `clear()`.
 */
import type { AlertRuleId } from '@breakwater/broker';
import type { Logger } from 'pino';
import { type Labels, type MetricHistory, seriesKey } from '../metrics-history/history.js';
import type { ResolvedRule } from './rules.js';
import type { AlertEvent, AlertSink } from './types.js';

export interface ActiveAlert {
  ruleId: AlertRuleId;
  labels: Labels;
  state: 'pending' | 'firing';
  /** First abnormal sample of the triggering series. */
  startedAt: number;
  /** When the engine first saw it abnormal. */
  pendingSince: number;
  firedAt: number | null;
  value: number;
  /** The rule's threshold, or the one given to raise() (e.g. the campaign's gate). */
  threshold: number;
  /** Start of the current normal streak while firing, else null. */
  normalSince: number | null;
  /** Event rules: the latest raise. */
  lastRaisedAt: number | null;
  summary: string;
}

export interface RaiseInput {
  labels?: Record<string, string>;
  value?: number;
  /** The limit that was crossed, when it is not the rule's (e.g. the OTA campaign's gate). */
  threshold?: number;
  /** Overrides the rule's summary. */
  summary?: string;
  /** When the problem began (default: now). */
  startedAt?: number;
}

export interface AlertEngineOptions {
  rules: readonly ResolvedRule[];
  history: MetricHistory;
  now: () => number;
  logger?: Logger | null;
  /** Recent events kept for GET /api/v1/alerts (default 500). */
  recentLimit?: number;
}

export class AlertEngine {
  readonly rules: ReadonlyMap<AlertRuleId, ResolvedRule>;
  readonly #history: MetricHistory;
  readonly #now: () => number;
  readonly #logger: Logger | null;
  readonly #sinks = new Set<AlertSink>();
  readonly #active = new Map<string, ActiveAlert>();
  readonly #recent: AlertEvent[] = [];
  readonly #recentLimit: number;

  constructor(options: AlertEngineOptions) {
    this.rules = new Map(options.rules.map((r) => [r.id, r]));
    this.#history = options.history;
    this.#now = options.now;
    this.#logger = options.logger ?? null;
    this.#recentLimit = options.recentLimit ?? 500;
  }

  /** Receives every firing and resolved event; returns an unsubscribe function. */
  subscribe(sink: AlertSink): () => void {
    this.#sinks.add(sink);
    return () => this.#sinks.delete(sink);
  }

  /** Pending and firing alerts, firing first then oldest first. */
  active(): ActiveAlert[] {
    return [...this.#active.values()].sort(
      (a, b) => (a.state === b.state ? 0 : a.state === 'firing' ? -1 : 1) || a.startedAt - b.startedAt,
    );
  }

  /** The latest events, newest first. */
  recent(limit = this.#recentLimit): AlertEvent[] {
    return this.#recent.slice(-limit).reverse();
  }

  /** Evaluates every enabled metric rule at `nowMs` (and expires event rules past `clearSec`). */
  evaluate(nowMs: number = this.#now()): void {
    for (const rule of this.rules.values()) {
      if (!rule.params.enabled) continue;
      if (!rule.metric) {
        this.#expireEvents(rule, nowMs);
        continue;
      }
      let samples: ReturnType<typeof rule.metric.evaluate>;
      try {
        samples = rule.metric.evaluate(this.#history, nowMs, rule.params);
      } catch (err) {
        this.#logger?.error({ err, rule: rule.id }, 'alert rule evaluation failed');
        continue;
      }
      const seen = new Set<string>();
      for (const s of samples) {
        const key = seriesKey(rule.id, s.labels);
        seen.add(key);
        this.#step(rule, key, s.labels, s.value, s.abnormal, s.onset, nowMs);
      }
      // A series that vanished (listener removed, no traffic) counts as normal.
      for (const [key, alert] of this.#active) {
        if (alert.ruleId === rule.id && !seen.has(key)) {
          this.#step(rule, key, alert.labels, alert.value, false, undefined, nowMs);
        }
      }
    }
  }

  /**
   * Reports an event-rule occurrence (OTA gate failed, telemetry validation failures). Fires at
   * once the first time; while firing, further raises only refresh it (no duplicate event).
   */
  raise(ruleId: AlertRuleId, input: RaiseInput = {}): void {
    const rule = this.#rule(ruleId);
    if (!rule.params.enabled) return;
    const now = this.#now();
    const labels = { ...input.labels };
    const key = seriesKey(rule.id, labels);
    const value = input.value ?? 1;
    const existing = this.#active.get(key);
    if (existing) {
      existing.value = value;
      existing.lastRaisedAt = now;
      return;
    }
    const alert: ActiveAlert = {
      ruleId: rule.id,
      labels,
      state: 'firing',
      startedAt: input.startedAt ?? now,
      pendingSince: now,
      firedAt: now,
      value,
      threshold: input.threshold ?? rule.params.threshold,
      normalSince: null,
      lastRaisedAt: now,
      summary: input.summary ?? rule.summarize(value, rule.params, labels),
    };
    this.#active.set(key, alert);
    this.#emit(rule, alert, 'firing', now);
  }

  /** Resolves a raised event-rule alert (e.g. the halted campaign was rolled back or resumed). */
  clear(ruleId: AlertRuleId, labels: Record<string, string> = {}, summary?: string): boolean {
    const rule = this.#rule(ruleId);
    const key = seriesKey(rule.id, labels);
    const alert = this.#active.get(key);
    if (!alert) return false;
    this.#active.delete(key);
    if (summary !== undefined) alert.summary = summary;
    this.#emit(rule, alert, 'resolved', this.#now());
    return true;
  }

  #rule(ruleId: AlertRuleId): ResolvedRule {
    const rule = this.rules.get(ruleId);
    if (!rule) throw new RangeError(`unknown alert rule ${ruleId}`);
    return rule;
  }

  #expireEvents(rule: ResolvedRule, nowMs: number): void {
    if (rule.params.clearSec <= 0) return;
    for (const [key, alert] of this.#active) {
      if (alert.ruleId !== rule.id || alert.lastRaisedAt === null) continue;
      if (nowMs - alert.lastRaisedAt >= rule.params.clearSec * 1000) {
        this.#active.delete(key);
        this.#emit(rule, alert, 'resolved', nowMs);
      }
    }
  }

  #step(
    rule: ResolvedRule,
    key: string,
    labels: Labels,
    value: number,
    abnormal: boolean,
    onset: number | undefined,
    nowMs: number,
  ): void {
    const alert = this.#active.get(key);
    const p = rule.params;
    if (!alert) {
      if (!abnormal) return;
      const created: ActiveAlert = {
        ruleId: rule.id,
        labels: { ...labels },
        state: 'pending',
        startedAt: Math.min(onset ?? nowMs, nowMs),
        pendingSince: nowMs,
        firedAt: null,
        value,
        threshold: p.threshold,
        normalSince: null,
        lastRaisedAt: null,
        summary: rule.summarize(value, p, labels),
      };
      this.#active.set(key, created);
      this.#maybeFire(rule, created, nowMs);
      return;
    }
    alert.value = value;
    if (alert.state === 'pending') {
      if (!abnormal) {
        this.#active.delete(key);
        return;
      }
      alert.summary = rule.summarize(value, p, labels);
      this.#maybeFire(rule, alert, nowMs);
      return;
    }
    // firing
    if (abnormal) {
      alert.normalSince = null;
      return;
    }
    alert.normalSince ??= nowMs;
    if (nowMs - alert.normalSince >= p.clearSec * 1000) {
      this.#active.delete(key);
      this.#emit(rule, alert, 'resolved', nowMs);
    }
  }

  #maybeFire(rule: ResolvedRule, alert: ActiveAlert, nowMs: number): void {
    if (nowMs - alert.pendingSince < rule.params.forSec * 1000) return;
    alert.state = 'firing';
    alert.firedAt = nowMs;
    this.#emit(rule, alert, 'firing', nowMs);
  }

  #emit(rule: ResolvedRule, alert: ActiveAlert, state: AlertEvent['state'], at: number): void {
    const event: AlertEvent = {
      ruleId: rule.id,
      name: rule.name,
      state,
      severity: rule.params.severity,
      incidentType: rule.incidentType,
      runbook: rule.runbook,
      labels: { ...alert.labels },
      value: alert.value,
      threshold: alert.threshold,
      startedAt: alert.startedAt,
      at,
      summary: state === 'resolved' ? `resolved: ${alert.summary}` : alert.summary,
    };
    this.#recent.push(event);
    if (this.#recent.length > this.#recentLimit)
      this.#recent.splice(0, this.#recent.length - this.#recentLimit);
    for (const sink of this.#sinks) {
      // A slow or failing sink must not stop evaluation or the other sinks.
      try {
        Promise.resolve(sink.onAlert(event)).catch((err: unknown) =>
          this.#logger?.error({ err, rule: rule.id }, 'alert sink failed'),
        );
      } catch (err) {
        this.#logger?.error({ err, rule: rule.id }, 'alert sink failed');
      }
    }
  }
}
