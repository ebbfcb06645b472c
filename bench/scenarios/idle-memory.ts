/**
 * Idle memory: RSS of the broker process before and after N idle connections (CONNECT, CONNACK,
 * then nothing, keepalive 600 s), reported as KiB per connection. The connections are spread over
 * several load-generator processes (each well under the 20,000 open-files limit) and over source
 * addresses 127.0.0.1..127.0.0.k, so neither the fd limit nor the ephemeral port range is in the way.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type BreakwaterLaunch, type BrokerName, type RunningBroker, startBroker } from '../brokers.js';
import { WorkerPool } from '../loadgen/pool.js';
import type { ClientSpec } from '../loadgen/protocol.js';
import { fmtNumber, fmtRatio, type MachineInfo, machineMarkdown, table } from '../report.js';
import type { BrokerInfo } from './throughput.js';

export interface IdleMemoryOptions {
  readonly brokers: readonly BrokerName[];
  readonly breakwater: BreakwaterLaunch;
  readonly connections: number;
  /** Connections per load-generator process (each holds one fd per connection). */
  readonly perWorker: number;
}

export interface IdleMemoryResult {
  readonly ok: boolean;
  readonly note: string | null;
  readonly connections: number;
  readonly rssBeforeKiB: number | null;
  readonly rssAfterKiB: number | null;
  readonly kibPerConnection: number | null;
}

/** Waits until RSS stops moving (< 0.5 % over 2 s) or 15 s pass; returns the last reading. */
async function settledRss(broker: RunningBroker): Promise<number> {
  const deadline = Date.now() + 15_000;
  let last = broker.rssKiB();
  while (Date.now() < deadline) {
    await sleep(2000);
    const now = broker.rssKiB();
    if (Math.abs(now - last) < last * 0.005) return now;
    last = now;
  }
  return last;
}

async function measure(
  name: BrokerName,
  opts: IdleMemoryOptions,
  infos: Partial<Record<BrokerName, BrokerInfo>>,
): Promise<IdleMemoryResult> {
  let broker: RunningBroker | null = null;
  let pool: WorkerPool | null = null;
  try {
    broker = await startBroker(name, opts.breakwater);
    infos[name] ??= { version: broker.version, launch: broker.launch };
    const workers = Math.ceil(opts.connections / opts.perWorker);
    const assignment: ClientSpec[][] = Array.from({ length: workers }, () => []);
    for (let i = 0; i < opts.connections; i++) {
      const w = i % workers;
      (assignment[w] as ClientSpec[]).push({ id: `idle-${i}`, localAddress: `127.0.0.${1 + w}` });
    }
    const before = await settledRss(broker);
    pool = new WorkerPool(workers);
    const setup = await pool.setup(assignment, {
      host: broker.host,
      port: broker.port,
      keepalive: 600,
      payloadSize: 64,
      concurrency: 50,
      qos1Window: 1,
      deadlineMs: 120_000,
    });
    const after = await settledRss(broker);
    if (!broker.alive()) throw new Error('broker exited');
    const stats = await pool.stats();
    const closed = stats.reduce((a, s) => a + s.closedUnexpectedly, 0);
    const held = setup.connected - closed;
    const notes: string[] = [];
    if (setup.failed > 0) notes.push(`${setup.failed} connections failed (${setup.firstError})`);
    if (closed > 0) notes.push(`${closed} connections closed by the broker while idle`);
    return {
      ok: held > 0,
      note: notes.length ? notes.join('; ') : null,
      connections: held,
      rssBeforeKiB: before,
      rssAfterKiB: after,
      kibPerConnection: held > 0 ? (after - before) / held : null,
    };
  } catch (err) {
    return {
      ok: false,
      note: (err as Error).message,
      connections: 0,
      rssBeforeKiB: null,
      rssAfterKiB: null,
      kibPerConnection: null,
    };
  } finally {
    await pool?.close();
    await broker?.stop();
  }
}

export async function runIdleMemory(
  opts: IdleMemoryOptions,
  log: (line: string) => void,
): Promise<{
  results: Partial<Record<BrokerName, IdleMemoryResult>>;
  brokers: Partial<Record<BrokerName, BrokerInfo>>;
}> {
  const infos: Partial<Record<BrokerName, BrokerInfo>> = {};
  const results: Partial<Record<BrokerName, IdleMemoryResult>> = {};
  for (const name of opts.brokers) {
    const r = await measure(name, opts, infos);
    results[name] = r;
    log(
      `idle-memory ${name}: ${r.ok ? `${fmtNumber(r.kibPerConnection, 2)} KiB/conn over ${r.connections} connections` : 'n/a'}${r.note ? ` (${r.note})` : ''}`,
    );
  }
  return { results, brokers: infos };
}

export function idleMemoryMarkdown(
  machine: MachineInfo,
  brokers: Partial<Record<BrokerName, BrokerInfo>>,
  results: Partial<Record<BrokerName, IdleMemoryResult>>,
  opts: IdleMemoryOptions,
): string {
  const out: string[] = ['# Idle memory per connection', '', machineMarkdown(machine)];
  for (const [name, info] of Object.entries(brokers))
    out.push(`- ${name} ${info.version}: \`${info.launch}\``);
  out.push(
    '',
    `${fmtNumber(opts.connections)} idle MQTT 3.1.1 connections (CONNECT, CONNACK, keepalive 600 s), spread over ${Math.ceil(opts.connections / opts.perWorker)} load-generator processes. ` +
      'Broker RSS (VmRSS) once it settles before and after connecting; KiB/conn = difference / connections. ' +
      'Ratio is Breakwater / peer: below 1 is better.',
    '',
  );
  const bw = results.breakwater;
  out.push(
    table(
      ['broker', 'connections', 'RSS before KiB', 'RSS after KiB', 'KiB/conn', 'ratio BW/peer', 'notes'],
      Object.entries(results).map(([name, r]) => [
        name,
        fmtNumber(r.connections),
        fmtNumber(r.rssBeforeKiB),
        fmtNumber(r.rssAfterKiB),
        r.ok ? fmtNumber(r.kibPerConnection, 2) : 'n/a',
        name !== 'breakwater' && bw?.ok && r.ok ? fmtRatio(bw.kibPerConnection, r.kibPerConnection) : '',
        r.note ?? '',
      ]),
    ),
  );
  return out.join('\n');
}
