/**
 * The game day's broker in a child process (BrokerSpec.process = 'child'): the simulator holds one
 * end of every device connection and the broker the other, and one process cannot hold both ends
 * of 10,000 connections under a 20,000-FD limit. The child (broker-child.ts) builds exactly the
 * in-process broker; the parent sees it through its listeners, its /metrics and IPC.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { BrokerEnv } from './environment.js';
import type { SinkControl } from './sink-control.js';
import type { BrokerSpec } from './types.js';

// From source (tsx) the entry is the .ts file; from dist, the .js next to this one.
const ENTRY = fileURLToPath(
  new URL(`./broker-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);

interface Ready {
  mqtt: { host: string; port: number };
  probe: { host: string; port: number };
  metricsUrl: string | null;
}

export async function startChildBroker(spec: BrokerSpec, dataDir: string): Promise<BrokerEnv> {
  const child = fork(ENTRY, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let ready: (r: Ready) => void = () => {};
  const readyP = new Promise<Ready>((resolve) => {
    ready = resolve;
  });
  child.on('message', (m: { ready?: Ready; id?: number; ok?: boolean; value?: unknown; error?: string }) => {
    if (m.ready) return ready(m.ready);
    const p = pending.get(m.id ?? -1);
    if (!p) return;
    pending.delete(m.id!);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(m.error));
  });
  const exited = once(child, 'exit');
  child.once('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`game-day broker exited (${code})`));
    pending.clear();
  });
  const request = <T>(op: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, op });
    });
  child.send({ spec, dataDir });
  const r = await Promise.race([
    readyP,
    exited.then(() => {
      throw new Error('game-day broker exited before it was ready');
    }),
  ]);
  const sinkControl: SinkControl | null = spec.integration
    ? {
        status: () => request('status'),
        cut: () => request('cut'),
        restore: () => request('restore'),
        counts: () => request('counts'),
      }
    : null;
  return {
    mqtt: r.mqtt,
    probe: r.probe,
    metricsUrl: r.metricsUrl,
    inProcess: null,
    sinkControl,
    async close() {
      if (child.exitCode !== null) return;
      await request('close').catch(() => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
