/**
 * The broker a scenario runs against: an in-process Breakwater built the way `breakwater up`
 * builds it (Broker + Guard + AdmissionGate + Listeners, /metrics over HTTP), or a remote one
 * (`--target`), measured through its /metrics only.
 *
 * The in-process broker has two TCP listeners on 127.0.0.1, port 0: `mqtt` for the devices (the
 * scenario's guard config) and `probe` for the QoS probe, anonymous and allowed to subscribe to
 * every device topic — a data-pipeline listener, so measuring delivery never depends on the
 * device auth backend a scenario breaks.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AdmissionConfigInput,
  AdmissionGate,
  AdmissionMetrics,
  Broker,
  BrokerMetrics,
  Guard,
  type ListenerAddress,
  Listeners,
  MemoryStorage,
  procFdUsage,
  resolveAdmissionConfig,
  systemClock,
  validateConfig,
} from '@breakwater/broker';
import type { Integration } from '@breakwater/integration';
import { SINK_NAME, SinkBackend } from './sink-backend.js';
import { localSinkControl, type SinkControl } from './sink-control.js';

/** What a scenario asks of the broker under test. */
export interface BrokerSpec {
  /** Guard config for the device listener (`mqtt`); null: no guard (anonymous, full access). */
  guard: Record<string, unknown> | null;
  /** Admission config; null: no admission gate at all (protections off). */
  admission: AdmissionConfigInput | null;
  /** Needs PostgreSQL at 127.0.0.1:5432 for the device credentials (every device of the fleet). */
  postgres: boolean;
  /**
   * A data integration: one rule on `filter` into a PostgreSQL sink (127.0.0.1:5432) reached
   * through a fault proxy, draining at most `maxPerSec` (sink-outage).
   */
  integration?: { filter: string; maxPerSec: number; retryMaxMs: number };
  /**
   * Where the broker runs: in this process (default), or in a child process — needed beyond ~9,000
   * devices, since one process cannot hold both ends of every connection under the FD limit.
   */
  process?: 'in-process' | 'child';
}

export const DEVICE_LISTENER = 'mqtt';
export const PROBE_LISTENER = 'probe';

export interface InProcessBroker {
  broker: Broker;
  guard: Guard | null;
  metrics: BrokerMetrics;
  dataDir: string;
  /** The data integration, when the scenario asked for one (spec.integration). */
  integration: Integration | null;
  /** Its PostgreSQL sink behind a fault proxy. */
  sink: SinkBackend | null;
}

export interface BrokerEnv {
  /** Where devices connect (before any fault proxy). */
  mqtt: { host: string; port: number };
  /** Where the QoS probe connects. */
  probe: { host: string; port: number };
  metricsUrl: string | null;
  inProcess: InProcessBroker | null;
  /** The integration's sink (sink-outage), in-process or in the child process; else null. */
  sinkControl: SinkControl | null;
  close(): Promise<void>;
}

/** The probe listener's guard entry: anonymous, may read every device topic, publish nothing. */
function probeListenerGuard(): Record<string, unknown> {
  return {
    authn: ['gameday-probe'],
    authz: {
      rules: [
        { action: 'subscribe', topic: 'devices/#' },
        { action: 'subscribe', topic: '$fleet/#' },
      ],
    },
  };
}

function withProbeListener(guard: Record<string, unknown>): Record<string, unknown> {
  const authenticators = { ...((guard.authenticators as Record<string, unknown>) ?? {}) };
  authenticators.anonymous = {
    ...((authenticators.anonymous as Record<string, unknown>) ?? {}),
    'gameday-probe': {},
  };
  const listeners = { ...((guard.listeners as Record<string, unknown>) ?? {}) };
  listeners[PROBE_LISTENER] = probeListenerGuard();
  return { ...guard, authenticators, listeners };
}

export async function startInProcessBroker(spec: BrokerSpec, dataDir: string): Promise<BrokerEnv> {
  // Default metrics on: process_open_fds / process_max_fds are the FD series of the report.
  const metrics = new BrokerMetrics();
  const guard = spec.guard
    ? new Guard(withProbeListener(spec.guard), { dataDir, metrics, clock: systemClock })
    : null;
  await guard?.start();
  const fdUsage = procFdUsage();
  const admission = spec.admission
    ? new AdmissionGate(resolveAdmissionConfig(spec.admission), {
        clock: systemClock,
        metrics: new AdmissionMetrics(metrics.registry),
        ...(fdUsage ? { fdUsage } : {}),
      })
    : undefined;
  // The data integration (sink-outage): a PostgreSQL sink behind a fault proxy, the buffer in the
  // run's data dir, the broker's flush joined to the buffer's (as `breakwater up` builds it).
  let sink: SinkBackend | null = null;
  let integration: Integration | null = null;
  if (spec.integration) {
    sink = new SinkBackend();
    await sink.create();
    const cfg = validateConfig(
      {
        dataDir,
        integration: sink.integrationConfig(
          spec.integration.maxPerSec,
          spec.integration.filter,
          spec.integration.retryMaxMs,
        ),
      },
      { baseDir: dataDir },
    );
    // Loaded here only: every `breakwater` command imports this package, few run this scenario.
    const { Integration } = await import('@breakwater/integration');
    integration = new Integration({ config: cfg.integration, registry: metrics.registry });
  }
  const memory = new MemoryStorage();
  const broker = new Broker({
    storage: integration ? integration.joinFlush(memory) : memory,
    metrics,
    ...(guard ? { hooks: guard } : {}),
    ...(admission ? { admission } : {}),
  });
  await broker.start();
  integration?.attach(broker);
  const listeners = new Listeners(
    broker,
    [
      { name: DEVICE_LISTENER, type: 'tcp', host: '127.0.0.1', port: 0 },
      { name: PROBE_LISTENER, type: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    admission ? { admission } : {},
  );
  const addresses = await listeners.start();
  const port = (name: string) => (addresses.find((a) => a.name === name) as ListenerAddress).port;

  // /metrics as `breakwater up` serves it (brokerHttpRoutes): the registry's text exposition.
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const httpPort = (server.address() as AddressInfo).port;

  return {
    mqtt: { host: '127.0.0.1', port: port(DEVICE_LISTENER) },
    probe: { host: '127.0.0.1', port: port(PROBE_LISTENER) },
    metricsUrl: `http://127.0.0.1:${httpPort}/metrics`,
    inProcess: { broker, guard, metrics, dataDir, integration, sink },
    sinkControl: integration && sink ? localSinkControl(integration, sink, SINK_NAME) : null,
    async close() {
      listeners.stopAccepting();
      await broker.close();
      await listeners.close({ graceMs: 0 });
      await guard?.close();
      await integration?.close();
      await sink?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function remoteEnv(target: { host: string; port: number; metricsUrl: string | null }): BrokerEnv {
  return {
    mqtt: { host: target.host, port: target.port },
    probe: { host: target.host, port: target.port },
    metricsUrl: target.metricsUrl,
    inProcess: null,
    sinkControl: null,
    async close() {},
  };
}
