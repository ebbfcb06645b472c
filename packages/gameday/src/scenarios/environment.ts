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
} from '@breakwater/broker';

/** What a scenario asks of the broker under test. */
export interface BrokerSpec {
  /** Guard config for the device listener (`mqtt`); null: no guard (anonymous, full access). */
  guard: Record<string, unknown> | null;
  /** Admission config; null: no admission gate at all (protections off). */
  admission: AdmissionConfigInput | null;
  /** Needs PostgreSQL at 127.0.0.1:5432 for the device credentials (every device of the fleet). */
  postgres: boolean;
}

export const DEVICE_LISTENER = 'mqtt';
export const PROBE_LISTENER = 'probe';

export interface InProcessBroker {
  broker: Broker;
  guard: Guard | null;
  metrics: BrokerMetrics;
  dataDir: string;
}

export interface BrokerEnv {
  /** Where devices connect (before any fault proxy). */
  mqtt: { host: string; port: number };
  /** Where the QoS probe connects. */
  probe: { host: string; port: number };
  metricsUrl: string | null;
  inProcess: InProcessBroker | null;
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
  const broker = new Broker({
    storage: new MemoryStorage(),
    metrics,
    ...(guard ? { hooks: guard } : {}),
    ...(admission ? { admission } : {}),
  });
  await broker.start();
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
    inProcess: { broker, guard, metrics, dataDir },
    async close() {
      listeners.stopAccepting();
      await broker.close();
      await listeners.close({ graceMs: 0 });
      await guard?.close();
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
    async close() {},
  };
}
