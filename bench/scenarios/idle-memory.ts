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
import {
  type BreakwaterLaunch,
  type BrokerName,
  type NodeMemoryReport,
  type RunningBroker,
  startBroker,
} from '../brokers.js';
import { fmtNumber, fmtRatio, type MachineInfo, machineMarkdown, table } from '../report.js';
import type { BrokerInfo } from './throughput.js';

export interface IdleMemoryOptions {
  readonly brokers: readonly BrokerName[];
  readonly breakwater: BreakwaterLaunch;
  readonly connections: number;
  /** Connection ramp, CONNECTs per second (below Breakwater's default admission rate). */
  readonly connectsPerSec: number;
  /** Idle connections made (and held) before the first reading; see measure(). */
  readonly warmupConnections: number;
}

export interface IdleMemoryResult {
  readonly ok: boolean;
  readonly note: string | null;
  readonly connections: number;
  readonly rssBeforeKiB: number | null;
  readonly rssAfterKiB: number | null;
  /** Plain RSS per connection after a full GC: the compared figure. */
  readonly kibPerConnection: number | null;
  /**
   * The garbage-independent figure: live V8 heap plus RSS outside the V8 heap per connection
   * (Node.js brokers), RSS per connection (Mosquitto).
   */
  readonly liveKibPerConnection: number | null;
  /**
   * RSS per connection without V8's young generation (rssOutsideYoungGen), a diagnostic; plain
   * RSS for Mosquitto. The row's ratio uses `kibPerConnection`.
   */
  readonly rssOutsideYoungGenKibPerConnection: number | null;
  /** Node.js brokers: live V8 heap bytes per connection. */
  readonly heapBytesPerConnection: number | null;
  /** Node.js brokers: the memory reports behind the two readings. */
  readonly reports: { before: NodeMemoryReport | null; after: NodeMemoryReport | null };
}

/**
 * Waits until RSS stops moving (< 0.5 % for three 2-s steps, 50 s at least) or 75 s pass. A
 * Node.js broker first gets a full garbage collection (RunningBroker.collectGarbage), so neither
 * reading counts garbage that happens not to be collected yet: without it, five runs of the same
 * Breakwater measured -0.37 to 2.11 KiB per connection.
 */
async function settledRss(
  broker: RunningBroker,
): Promise<{ rssKiB: number; report: NodeMemoryReport | null }> {
  // A full GC at the start of the wait, then at least 50 s idle. V8 keeps the pages a collection
  // freed in a pool (resident, outside every heap space) until its memory reducer runs, some
  // 30 s after the collections that follow a burst. A reading taken before it counted ~17 MB of
  // such pages; the connections that came next reused them, and the run measured -1.3 to -0.4
  // KiB per connection in 3 of 9 runs. The reducer also shrinks the young generation.
  await broker.collectGarbage();
  const start = Date.now();
  const deadline = start + 75_000;
  let last = broker.rssKiB();
  let stable = 0;
  while (Date.now() < deadline) {
    await sleep(2000);
    const now = broker.rssKiB();
    stable = Math.abs(now - last) < last * 0.005 ? stable + 1 : 0;
    last = now;
    if (stable >= 3 && Date.now() - start >= 50_000) break;
  }
  const report = await broker.collectGarbage();
  return { rssKiB: report?.rssKiB ?? broker.rssKiB(), report };
}

/**
 * RSS without V8's young generation: a nursery (up to 32 MiB on Node 20) that V8 grows with the
 * garbage that survives collections, not with connections. While the control plane made garbage
 * every second it went 0.3 -> 32 MiB between the readings, 3.3 KiB per connection at 10,000.
 */
function rssOutsideYoungGen(r: { rssKiB: number; report: NodeMemoryReport | null }): number {
  const young = r.report?.spaces?.new_space;
  return young === undefined ? r.rssKiB : r.rssKiB - young / 1024;
}

/**
 * KiB per connection that does not depend on when garbage is collected: for a Node.js broker,
 * live V8 heap bytes plus RSS outside the V8 heap (native handles, malloc); for Mosquitto, RSS.
 */
function liveKiB(r: { rssKiB: number; report: NodeMemoryReport | null }): number {
  if (r.report === null) return r.rssKiB;
  return r.report.heapUsed / 1024 + (r.report.rssKiB - r.report.heapResident / 1024);
}

/** Connects `devices` idle MQTT 3.1.1 clients; resolves once all are connected (or after 120 s). */
async function connectFleet(
  broker: RunningBroker,
  devices: number,
  idPrefix: string,
  connectsPerSec: number,
): Promise<{ fleet: Fleet; done: boolean }> {
  const fleet = new Fleet({
    target: { host: broker.host, port: broker.port },
    devices,
    idPrefix,
    protocolVersion: 4,
    keepaliveSec: 600,
    rampPerSec: connectsPerSec,
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
  return { fleet, done };
}

async function measure(
  name: BrokerName,
  opts: IdleMemoryOptions,
  infos: Partial<Record<BrokerName, BrokerInfo>>,
): Promise<IdleMemoryResult> {
  let broker: RunningBroker | null = null;
  const fleets: Fleet[] = [];
  try {
    broker = await startBroker(name, opts.breakwater, { gcOnSignal: true });
    infos[name] ??= { version: broker.version, launch: broker.launch };
    // Warm-up connections first: the heap pages a Node.js broker freed after startup would
    // otherwise be reused by the first connections and hide their cost. The measured connections
    // come on top of them, so the figure is the slope, what each further connection costs.
    if (opts.warmupConnections > 0) {
      const warm = await connectFleet(broker, opts.warmupConnections, 'warm-', opts.connectsPerSec);
      fleets.push(warm.fleet);
    }
    const before = await settledRss(broker);
    const { fleet, done } = await connectFleet(broker, opts.connections, 'idle-', opts.connectsPerSec);
    fleets.push(fleet);
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
    const warmHeld = fleets.length > 1 ? fleets[0]!.stats().connected : 0;
    if (warmHeld < opts.warmupConnections)
      notes.push(`${warmHeld} of ${opts.warmupConnections} warm-up connections held`);
    return {
      ok: held > 0,
      note: notes.length ? notes.join('; ') : null,
      connections: held,
      rssBeforeKiB: before.rssKiB,
      rssAfterKiB: after.rssKiB,
      kibPerConnection: held > 0 ? (after.rssKiB - before.rssKiB) / held : null,
      liveKibPerConnection: held > 0 ? (liveKiB(after) - liveKiB(before)) / held : null,
      rssOutsideYoungGenKibPerConnection:
        held > 0 ? (rssOutsideYoungGen(after) - rssOutsideYoungGen(before)) / held : null,
      heapBytesPerConnection:
        held > 0 && after.report !== null && before.report !== null
          ? (after.report.heapUsed - before.report.heapUsed) / held
          : null,
      reports: { before: before.report, after: after.report },
    };
  } catch (err) {
    return {
      ok: false,
      note: (err as Error).message,
      connections: 0,
      rssBeforeKiB: null,
      rssAfterKiB: null,
      kibPerConnection: null,
      liveKibPerConnection: null,
      rssOutsideYoungGenKibPerConnection: null,
      heapBytesPerConnection: null,
      reports: { before: null, after: null },
    };
  } finally {
    for (const f of fleets) await f.stop();
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
      `idle-memory ${name}: ${r.ok ? `${fmtNumber(r.kibPerConnection, 2)} KiB/conn RSS, ${fmtNumber(r.rssOutsideYoungGenKibPerConnection, 2)} w/o young gen, ${fmtNumber(r.liveKibPerConnection, 2)} live, over ${r.connections} connections` : 'n/a'}${r.note ? ` (${r.note})` : ''}`,
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
    `${fmtNumber(opts.connections)} idle MQTT 3.1.1 connections (CONNECT, CONNACK, keepalive 600 s) from the game-day fleet simulator, on top of ${fmtNumber(opts.warmupConnections)} warm-up connections held throughout, paced at ${fmtNumber(opts.connectsPerSec)} CONNECTs/s (below Breakwater's default admission rate; every broker in its default configuration). ` +
      'Readings before and after the measured connections, so each figure is what one more connection costs. ' +
      'RSS alone is not repeatable for a garbage-collected broker (runs of the same Breakwater gave -0.37 to 2.11 KiB/conn: garbage not yet collected, freed pages reused), so the Node.js brokers (Breakwater, Aedes) run a full GC before each reading and report their memory (bench/peers/gc-on-signal.mjs, preloaded with --expose-gc). ' +
      '**RSS KiB/conn** is the plain RSS difference after the GC; the ratio (Breakwater / peer, below 1 is better) compares it. Two diagnostics stand beside it: ' +
      "**RSS w/o young gen KiB/conn** = the RSS difference minus the difference in V8's young generation (a nursery of up to 32 MiB on Node 20 that V8 grows with the rate of garbage that survives a collection, not with connections; it stays the same between the readings unless the broker makes garbage while idle: it went 0.3 -> 32 MiB, 3.3 KiB per connection, until the control plane's metric history stopped collecting per-socket lists every second; bench/results/young-gen-cap.md), and " +
      '**live KiB/conn** = live V8 heap + RSS outside the V8 heap (native handles, malloc), which does not depend on how freed pages are reused. For Mosquitto, which has no collector, all three figures are its RSS per connection.',
    '',
  );
  const bw = results.breakwater;
  out.push(
    table(
      [
        'broker',
        'connections',
        'RSS KiB/conn',
        'ratio BW/peer',
        'RSS w/o young gen KiB/conn',
        'live KiB/conn',
        'heap B/conn',
        'young gen before → after KiB',
        'RSS before KiB',
        'RSS after KiB',
        'notes',
      ],
      Object.entries(results).map(([name, r]) => [
        name,
        fmtNumber(r.connections),
        r.ok ? fmtNumber(r.kibPerConnection, 2) : 'n/a',
        name !== 'breakwater' && bw?.ok && r.ok ? fmtRatio(bw.kibPerConnection, r.kibPerConnection) : '',
        r.ok ? fmtNumber(r.rssOutsideYoungGenKibPerConnection, 2) : 'n/a',
        r.ok ? fmtNumber(r.liveKibPerConnection, 2) : 'n/a',
        r.heapBytesPerConnection === null ? '' : fmtNumber(r.heapBytesPerConnection, 0),
        r.reports.before?.spaces?.new_space !== undefined && r.reports.after?.spaces?.new_space !== undefined
          ? `${fmtNumber(r.reports.before.spaces.new_space / 1024)} → ${fmtNumber(r.reports.after.spaces.new_space / 1024)}`
          : '',
        fmtNumber(r.rssBeforeKiB),
        fmtNumber(r.rssAfterKiB),
        r.note ?? '',
      ]),
    ),
  );
  return out.join('\n');
}
