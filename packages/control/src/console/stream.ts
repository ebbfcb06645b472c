/**
 * `GET /api/v1/console/stream`: one Server-Sent Events stream per console tab (issue 14).
 *
 * The first event is `snapshot` (the last hour of every live series in 10 s buckets, the alert
 * thresholds, the active alerts, the newest audit sequence number); then one `delta` per second
 * (the newest value of every series; the alerts and the audit sequence only when they changed).
 * The console refetches a page's API data when `auditSeq` moves: every state change the API makes
 * is audited, so one number tells every tab that something changed, without a second channel.
 *
 * One shared ticker serves every open stream (runs only while one is open), so N tabs cost one
 * history read and one audit query per second, not N.
 */
import type { AlertRuleId, Clock, TimerHandle } from '@breakwater/broker';
import type { FastifyReply } from 'fastify';
import type { ActiveAlert, AlertEngine } from '../alerts/engine.js';
import type { AuditRepository } from '../audit/model.js';
import type { MetricHistory } from '../metrics-history/history.js';
import { liveLatest, liveSnapshot } from './live-metrics.js';

export interface ConsoleAlert {
  ruleId: string;
  state: 'pending' | 'firing';
  labels: Record<string, string>;
  value: number;
  threshold: number;
  summary: string;
  startedAt: string;
  firedAt: string | null;
  severity: string;
  runbook: string | null;
}

/** Where the charts draw their alert thresholds, in the chart's unit. */
export interface ConsoleThresholds {
  /** auth-failure-ratio, in percent. */
  authFailPct: number | null;
  /** auth-backend-latency, seconds. */
  backendP99Sec: number | null;
  /** fd-usage-high, a ratio of process_max_fds. */
  fdRatio: number | null;
  /** new-connection-burst, as attempts per second. */
  attemptsPerSec: number | null;
  /** message-rate-over-budget, messages per second. */
  msgInPerSec: number | null;
}

const SNAPSHOT_WINDOW_SEC = 3600;
const SNAPSHOT_STEP_SEC = 10;

export interface ConsoleStreamOptions {
  clock: Clock;
  history: MetricHistory;
  engine: AlertEngine;
  audit: AuditRepository;
  intervalMs?: number;
}

interface Subscriber {
  reply: FastifyReply;
}

export class ConsoleStreamHub {
  readonly #o: ConsoleStreamOptions;
  readonly #subscribers = new Set<Subscriber>();
  #timer: TimerHandle | null = null;
  #lastAlerts = '';
  #lastAuditSeq = -1;
  #ticking = false;
  #closed = false;

  constructor(options: ConsoleStreamOptions) {
    this.#o = options;
  }

  get size(): number {
    return this.#subscribers.size;
  }

  thresholds(): ConsoleThresholds {
    const rule = (id: string) => {
      const r = this.#o.engine.rules.get(id as AlertRuleId);
      return r?.params.enabled ? r.params : null;
    };
    const authFail = rule('auth-failure-ratio');
    const latency = rule('auth-backend-latency');
    const fd = rule('fd-usage-high');
    const burst = rule('new-connection-burst');
    const msgRate = rule('message-rate-over-budget');
    return {
      authFailPct: authFail ? authFail.threshold * 100 : null,
      backendP99Sec: latency ? latency.threshold : null,
      fdRatio: fd ? fd.threshold : null,
      attemptsPerSec: burst ? burst.threshold / Math.max(burst.windowSec, 1) : null,
      msgInPerSec: msgRate ? msgRate.threshold : null,
    };
  }

  alerts(): ConsoleAlert[] {
    return this.#o.engine.active().map((a: ActiveAlert) => {
      const rule = this.#o.engine.rules.get(a.ruleId);
      return {
        ruleId: a.ruleId,
        state: a.state,
        labels: { ...a.labels },
        value: a.value,
        threshold: a.threshold,
        summary: a.summary,
        startedAt: new Date(a.startedAt).toISOString(),
        firedAt: a.firedAt === null ? null : new Date(a.firedAt).toISOString(),
        severity: rule?.params.severity ?? 'warning',
        runbook: rule?.runbook ?? null,
      };
    });
  }

  /** Takes over the reply (hijacked by the route) until the client goes away. */
  async open(reply: FastifyReply): Promise<void> {
    const raw = reply.raw;
    if (this.#closed) {
      // Shutting down: a reconnecting tab must not hold the HTTP server open.
      raw.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '2' });
      raw.end('shutting down\n');
      return;
    }
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const now = this.#o.clock.now();
    const snapshot = {
      at: now,
      live: liveSnapshot(this.#o.history, now, SNAPSHOT_WINDOW_SEC, SNAPSHOT_STEP_SEC),
      thresholds: this.thresholds(),
      alerts: this.alerts(),
      auditSeq: await this.#auditSeq(),
    };
    // Reconnects resume the stream from a fresh snapshot; 2 s before EventSource-style retries.
    raw.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
    const sub: Subscriber = { reply };
    this.#subscribers.add(sub);
    raw.on('close', () => {
      this.#subscribers.delete(sub);
      if (this.#subscribers.size === 0) this.#stop();
    });
    if (this.#timer === null) {
      this.#timer = this.#o.clock.setInterval(() => void this.#tick(), this.#o.intervalMs ?? 1000);
    }
  }

  /** Ends every open stream (control plane shutdown). */
  close(): void {
    this.#closed = true;
    for (const s of this.#subscribers) s.reply.raw.end();
    this.#subscribers.clear();
    this.#stop();
  }

  #stop(): void {
    if (this.#timer !== null) this.#o.clock.clearInterval(this.#timer);
    this.#timer = null;
  }

  async #auditSeq(): Promise<number> {
    const page = await this.#o.audit.list({}, 1, null);
    return page.items[0]?.seq ?? 0;
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#subscribers.size === 0) return;
    this.#ticking = true;
    try {
      const now = this.#o.clock.now();
      const delta: Record<string, unknown> = liveLatest(this.#o.history, now);
      const alerts = this.alerts();
      const alertsJson = JSON.stringify(alerts);
      if (alertsJson !== this.#lastAlerts) {
        this.#lastAlerts = alertsJson;
        delta.alerts = alerts;
      }
      const seq = await this.#auditSeq();
      if (seq !== this.#lastAuditSeq) {
        this.#lastAuditSeq = seq;
        delta.auditSeq = seq;
      }
      const frame = `event: delta\ndata: ${JSON.stringify(delta)}\n\n`;
      for (const s of this.#subscribers) s.reply.raw.write(frame);
    } catch {
      // A failed audit read skips one second; the next tick tries again.
    } finally {
      this.#ticking = false;
    }
  }
}
