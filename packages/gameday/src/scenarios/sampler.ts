/**
 * Once a second: the fleet's counters (client side) and the broker's /metrics (server side, the
 * Prometheus text scraped over HTTP, names as in packages/broker/src/metrics.ts,
 * guard/metrics.ts and guard/admission/metrics.ts). Counters become per-second deltas; a second
 * whose scrape failed has nulls on the broker side (and the next delta spans both seconds).
 */
import type { Fleet } from '../fleet/fleet.js';
import type { FleetStats } from '../fleet/types.js';
import { MetricsSnapshot } from './prometheus.js';
import type { QosProbe } from './qos-probe.js';
import type { SecondSample } from './types.js';

/** The broker series the report reads. */
export const Series = {
  attempts: 'breakwater_connection_attempts_total',
  connections: 'breakwater_connections',
  backendQueries: 'breakwater_auth_backend_queries_total',
  auth: 'breakwater_auth_total',
  admissionRefused: 'breakwater_admission_refused_total',
  openSockets: 'breakwater_open_sockets',
  socketsWithoutConnect: 'breakwater_sockets_without_connect',
  openFds: 'process_open_fds',
  maxFds: 'process_max_fds',
  messagesIn: 'breakwater_messages_received_total',
  messagesOut: 'breakwater_messages_sent_total',
  breaker: 'breakwater_auth_backend_breaker_state',
  dropped: 'breakwater_messages_dropped_total',
  backendLatencyBucket: 'breakwater_auth_backend_duration_seconds_bucket',
  backendLatencySum: 'breakwater_auth_backend_duration_seconds_sum',
  backendRejected: 'breakwater_auth_backend_rejected_total',
  backendLimit: 'breakwater_auth_backend_limit',
  backendInflight: 'breakwater_auth_backend_inflight',
  flappingBans: 'breakwater_flapping_bans_total',
  /** Unlabelled admission gauge: present whenever admission control is. */
  tarpitSlots: 'breakwater_tarpit_slots_in_use',
} as const;

export async function scrape(url: string, timeoutMs = 2_000): Promise<MetricsSnapshot> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return MetricsSnapshot.parse(await res.text());
}

function diff(now: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

interface BrokerCounters {
  attempts: number;
  backendQueries: number;
  messagesIn: number;
  messagesOut: number;
  auth: Record<string, number>;
  admission: Record<string, number>;
  dropped: Record<string, number>;
  latency: Record<string, number>;
  latencySum: number;
  rejected: Record<string, number>;
  flappingBans: number;
}

function brokerCounters(m: MetricsSnapshot): BrokerCounters {
  return {
    attempts: m.sum(Series.attempts),
    backendQueries: m.sum(Series.backendQueries),
    messagesIn: m.sum(Series.messagesIn),
    messagesOut: m.sum(Series.messagesOut),
    auth: m.byLabel(Series.auth, 'outcome'),
    admission: m.byLabel(Series.admissionRefused, 'reason'),
    dropped: m.byLabel(Series.dropped, 'reason'),
    latency: m.byLabel(Series.backendLatencyBucket, 'le'),
    latencySum: m.sum(Series.backendLatencySum),
    rejected: m.byLabel(Series.backendRejected, 'reason'),
    flappingBans: m.sum(Series.flappingBans),
  };
}

/** Bucket deltas keep every bound (zeros too): a cumulative histogram needs all its rungs. */
function diffAll(now: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) out[k] = v - (before[k] ?? 0);
  return out;
}

export interface SamplerSources {
  fleet: Fleet;
  metricsUrl: string | null;
  probe: QosProbe | null;
  alertsFiring: (() => number) | null;
  extra: (() => Record<string, number>) | null;
}

export class Sampler {
  readonly #s: SamplerSources;
  #prevFleet: FleetStats | null = null;
  #prevBroker: BrokerCounters | null = null;
  #prevDelivered = 0;
  /** First and last successful scrape (the report's totals come from them). */
  first: MetricsSnapshot | null = null;
  last: MetricsSnapshot | null = null;
  scrapeErrors = 0;
  lastScrapeError: string | null = null;

  constructor(sources: SamplerSources) {
    this.#s = sources;
  }

  /** The baseline before t = 0. */
  async baseline(): Promise<void> {
    this.#prevFleet = this.#s.fleet.stats();
    this.#prevDelivered = this.#s.probe?.stats().delivered ?? 0;
    const m = await this.#scrape();
    if (m) {
      this.first = m;
      this.#prevBroker = brokerCounters(m);
    }
  }

  async #scrape(): Promise<MetricsSnapshot | null> {
    if (!this.#s.metricsUrl) return null;
    try {
      const m = await scrape(this.#s.metricsUrl);
      this.last = m;
      return m;
    } catch (err) {
      this.scrapeErrors++;
      this.lastScrapeError = err instanceof Error ? err.message : String(err);
      return null;
    }
  }

  async sample(t: number): Promise<SecondSample> {
    const [m, f] = await Promise.all([this.#scrape(), Promise.resolve(this.#s.fleet.stats())]);
    const pf = this.#prevFleet ?? f;
    const delivered = this.#s.probe?.stats().delivered ?? 0;
    const sample: SecondSample = {
      t,
      attempts: f.attempts - pf.attempts,
      connected: f.connected,
      refusals: diff(f.refusals, pf.refusals),
      networkErrors: f.networkErrors - pf.networkErrors,
      published: f.published - pf.published,
      acked: f.qos1Acked - pf.qos1Acked,
      delivered: delivered - this.#prevDelivered,
      brokerAttempts: null,
      brokerConnections: null,
      backendQueries: null,
      backendLatency: null,
      backendLatencySumS: null,
      backendRejected: {},
      backendLimit: null,
      backendInflight: null,
      flappingBans: null,
      authOutcomes: {},
      admissionRefusals: {},
      messagesDropped: {},
      openSockets: null,
      socketsWithoutConnect: null,
      openFds: null,
      maxFds: null,
      messagesIn: null,
      messagesOut: null,
      breakerOpen: null,
      alertsFiring: this.#s.alertsFiring ? this.#s.alertsFiring() : null,
      extra: this.#s.extra ? this.#s.extra() : {},
    };
    this.#prevFleet = f;
    this.#prevDelivered = delivered;
    if (m) {
      const c = brokerCounters(m);
      const p = this.#prevBroker ?? c;
      this.first ??= m;
      sample.brokerAttempts = c.attempts - p.attempts;
      // A broker with an auth backend exports its breaker gauge from the start; its call counters
      // only once a call was made (prom-client writes labelled series when first used).
      const backend = m.has(Series.breaker) || m.has(Series.backendQueries);
      sample.backendQueries = backend ? c.backendQueries - p.backendQueries : null;
      if (m.has(Series.backendLatencyBucket)) {
        const d = diffAll(c.latency, p.latency);
        // Only seconds with calls carry the histogram (most seconds of a warm run have none).
        sample.backendLatency = (d['+Inf'] ?? 0) > 0 ? d : null;
        sample.backendLatencySumS = sample.backendLatency ? c.latencySum - p.latencySum : null;
      }
      sample.backendRejected = diff(c.rejected, p.rejected);
      sample.backendLimit = m.has(Series.backendLimit) ? m.sum(Series.backendLimit) : null;
      sample.backendInflight = m.has(Series.backendInflight) ? m.sum(Series.backendInflight) : null;
      sample.flappingBans =
        m.has(Series.flappingBans) || m.has(Series.tarpitSlots) ? c.flappingBans - p.flappingBans : null;
      sample.messagesIn = c.messagesIn - p.messagesIn;
      sample.messagesOut = c.messagesOut - p.messagesOut;
      sample.authOutcomes = diff(c.auth, p.auth);
      sample.admissionRefusals = diff(c.admission, p.admission);
      sample.messagesDropped = diff(c.dropped, p.dropped);
      sample.brokerConnections = m.sum(Series.connections);
      sample.openSockets = m.has(Series.openSockets) ? m.sum(Series.openSockets) : null;
      sample.socketsWithoutConnect = m.has(Series.socketsWithoutConnect)
        ? m.sum(Series.socketsWithoutConnect)
        : null;
      sample.openFds = m.max(Series.openFds);
      sample.maxFds = m.max(Series.maxFds);
      const breaker = m.max(Series.breaker);
      sample.breakerOpen = breaker === null ? null : breaker >= 2;
      this.#prevBroker = c;
    }
    return sample;
  }
}
