/**
 * Child-process entry of a game day's broker (child-broker.ts forks it): the same broker
 * `startInProcessBroker` builds, answering the parent's requests over IPC. Exits when the parent
 * says `close` or goes away.
 */
import { startInProcessBroker } from './environment.js';
import { SINK_NAME } from './sink-backend.js';
import { localSinkControl } from './sink-control.js';
import type { BrokerSpec } from './types.js';

interface Start {
  spec: BrokerSpec;
  dataDir: string;
}

const send = (m: unknown) => process.send?.(m);

process.once('message', async (start: Start) => {
  const env = await startInProcessBroker({ ...start.spec, process: 'in-process' }, start.dataDir);
  const ip = env.inProcess!;
  const sink = ip.integration && ip.sink ? localSinkControl(ip.integration, ip.sink, SINK_NAME) : null;
  const ops: Record<string, () => Promise<unknown>> = {
    status: () => (sink ? sink.status() : Promise.reject(new Error('no integration'))),
    cut: () => (sink ? sink.cut() : Promise.reject(new Error('no integration'))),
    restore: () => (sink ? sink.restore() : Promise.reject(new Error('no integration'))),
    counts: () => (sink ? sink.counts() : Promise.reject(new Error('no integration'))),
    close: async () => {
      await env.close();
      setImmediate(() => process.exit(0));
    },
  };
  process.on('message', (req: { id: number; op: string }) => {
    const op = ops[req.op];
    if (!op) return send({ id: req.id, ok: false, error: `unknown op ${req.op}` });
    op().then(
      (value) => send({ id: req.id, ok: true, value }),
      (err: unknown) =>
        send({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  process.on('disconnect', () => {
    void env.close().finally(() => process.exit(0));
  });
  send({ ready: { mqtt: env.mqtt, probe: env.probe, metricsUrl: env.metricsUrl } });
});
