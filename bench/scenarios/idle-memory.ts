/**
 * Idle memory: RSS of the broker process before and after N idle connections (CONNECT, CONNACK,
 * then nothing, keepalive 600 s), reported as KiB per connection. The connections come from the
 * game-day fleet simulator in this process (one fd per connection, well under the 20,000 limit
 * for 10,000) over source addresses 127.0.0.1..4, so the ephemeral port range is not in the way.
 *
 * Connects are paced at `connectsPerSec` (default 600/s): Breakwater's default admission admits
 * 1,000 CONNECTs/s per listener with a 2,000 burst, 25 % of it reserved for clients that verify
 * locally, so an unpaced 10,000 burst would be partly refused (by design) and measure fewer
 * connections. Every broker gets the same pace; the broker runs its default configuration.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet } from '@breakwater/gameday';
import { type BreakwaterLaunch, type BrokerName, type RunningBroker, startBroker } from '../brokers.js';
import { fmtNumber, fmtRatio, type MachineInfo, machineMarkdown, table } from '../report.js';
import type { BrokerInfo } from './throughput.js';

export interface IdleMemoryOptions {
  readonly brokers: readonly BrokerName[];
  readonly breakwater: BreakwaterLaunch;
  readonly connections: number;
  /** Connection ramp, CONNECTs per second (below Breakwater's default admission rate). */
  readonly connectsPerSec: number;
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
  let fleet: Fleet | null = null;
  try {
    broker = await startBroker(name, opts.breakwater);
    infos[name] ??= { version: broker.version, launch: broker.launch };
    const before = await settledRss(broker);
    fleet = new Fleet({
      target: { host: broker.host, port: broker.port },
      devices: opts.connections,
      idPrefix: 'idle-',
      protocolVersion: 4,
      keepaliveSec: 600,
      rampPerSec: opts.connectsPerSec,
      // A refused device retries after 1 s: the run measures the connections it holds at the end.
      policy: 'naive',
      sourceAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'],
      connectTimeoutMs: 30_000,
    });
    await fleet.start();
    const done = await fleet
      .waitFor((s) => s.connected === s.devices, 120_000)
      .then(() => true)
      .catch(() => false);
    const after = await settledRss(broker);
    if (!broker.alive()) throw new Error('broker exited');
    const s = fleet.stats();
    const held = s.connected;
    const notes: string[] = [];
    const refused = Object.values(s.refusals).reduce((a, v) => a + v, 0);
    if (refused > 0) notes.push(`${refused} CONNECTs refused and retried (${JSON.stringify(s.refusals)})`);
    if (s.networkErrors > 0) notes.push(`${s.networkErrors} network errors`);
    const dropped = Object.values(s.disconnectsByServer).reduce((a, v) => a + v, 0);
    if (dropped > 0) notes.push(`${dropped} connections closed by the broker while idle`);
    if (!done) notes.push(`only ${held} of ${s.devices} connected after 120 s`);
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
    await fleet?.stop();
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
    `${fmtNumber(opts.connections)} idle MQTT 3.1.1 connections (CONNECT, CONNACK, keepalive 600 s) from the game-day fleet simulator, paced at ${fmtNumber(opts.connectsPerSec)} CONNECTs/s (below Breakwater's default admission rate; every broker in its default configuration). ` +
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
