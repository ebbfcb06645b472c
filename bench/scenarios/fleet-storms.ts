/**
 * Connection storms driven by the game-day fleet simulator (@breakwater/gameday), against each
 * broker in its own child process (the simulator holds one end of every connection, the broker
 * the other: one process could not hold both under the 20,000-FD limit).
 *
 * - connect-storm: N devices connect from idle with at most `maxConnecting` handshakes in flight
 *   (closed loop: the broker's accept + CONNACK rate sets the pace, not the generator). Reports
 *   the time until all N are connected and connects/s, plus the simulator's own RSS.
 * - reboot-storm: N devices connected, then a third of them drop without DISCONNECT (an OTA reboot
 *   wave) and come back after 1-1.25 s, all at once. Reports the time until the fleet is whole
 *   again (99 % and 100 %) and the handshake latency of the rebooted devices.
 *
 * Devices use MQTT 3.1.1, keepalive 600 s, the device SDK's fleet policy (a refused or failed
 * attempt waits 5-15 s, so refusals show up as time), source addresses 127.0.0.1-8.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet, type FleetStats } from '@breakwater/gameday';
import {
  ADMISSION_OFF_CONFIG,
  type BreakwaterLaunch,
  type BrokerName,
  type RunningBroker,
  startBroker,
} from '../brokers.js';
import { fmtNumber, fmtRatio, type MachineInfo, machineMarkdown, table } from '../report.js';
import type { BrokerInfo } from './throughput.js';

export type StormKind = 'connect-storm' | 'reboot-storm';

/** A broker under test: 'breakwater' runs with admission off; 'breakwater-default' with defaults. */
export type StormTarget = BrokerName | 'breakwater-default';
export const StormTargets: readonly StormTarget[] = [
  'breakwater',
  'mosquitto',
  'aedes',
  'breakwater-default',
];

export interface StormOptions {
  readonly kind: StormKind;
  readonly targets: readonly StormTarget[];
  readonly breakwater: BreakwaterLaunch;
  readonly devices: number;
  readonly maxConnecting: number;
  /** reboot-storm: share of the fleet that reboots at once. */
  readonly rebootFraction: number;
  readonly rebootDownMs: [number, number];
  readonly deadlineMs: number;
}

export interface StormResult {
  readonly ok: boolean;
  readonly note: string | null;
  readonly devices: number;
  /** connect-storm: start → all connected. reboot-storm: reboot → all connected again. */
  readonly allConnectedMs: number | null;
  readonly p99ConnectedMs: number | null;
  readonly connectsPerSec: number | null;
  /** reboot-storm: first boot attempt → last device back (the broker's share of the storm). */
  readonly recoveryMs?: number | null;
  /** Handshake latency (attempt → CONNACK) of the devices measured, ms. */
  readonly handshakeP50Ms: number | null;
  readonly handshakeP99Ms: number | null;
  readonly attempts: number;
  readonly refusals: Record<string, number>;
  readonly networkErrors: number;
  readonly brokerRssKiB: number | null;
  readonly brokerCpuMs: number | null;
  /** CPU the bench process (the simulator) used over the same span. */
  readonly simulatorCpuMs: number | null;
  /** The whole bench process (simulator + tsx + this harness) at the end, and before the Fleet. */
  readonly simulatorRssMiB: number;
  readonly simulatorBaseRssMiB: number;
  readonly simulatorHeapMiB: number;
}

const SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 1}`);

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Follows attempt → CONNACK per device, and when each device (re)connected. */
class Tracker {
  readonly #attemptAt = new Map<string, number>();
  readonly handshakes: number[] = [];
  readonly connectedAt: number[] = [];
  firstAttemptAt: number | null = null;
  active = true;

  constructor(fleet: Fleet, watch: (id: string) => boolean) {
    fleet.on('attempt', (id: string) => {
      if (!this.active || !watch(id)) return;
      const now = performance.now();
      this.firstAttemptAt ??= now;
      this.#attemptAt.set(id, now);
    });
    fleet.on('connected', (id: string) => {
      if (!this.active || !watch(id)) return;
      const now = performance.now();
      const at = this.#attemptAt.get(id);
      if (at !== undefined) this.handshakes.push(now - at);
      this.connectedAt.push(now);
    });
  }
}

async function launch(target: StormTarget, opts: StormOptions): Promise<RunningBroker> {
  if (target === 'breakwater-default') return startBroker('breakwater', opts.breakwater);
  if (target === 'breakwater') {
    return startBroker('breakwater', opts.breakwater, { breakwaterConfig: ADMISSION_OFF_CONFIG });
  }
  return startBroker(target, opts.breakwater);
}

async function runOne(
  target: StormTarget,
  opts: StormOptions,
  infos: Partial<Record<StormTarget, BrokerInfo>>,
  log: (line: string) => void,
): Promise<StormResult> {
  let broker: RunningBroker | null = null;
  let fleet: Fleet | null = null;
  let baseRssMiB = 0;
  const empty = { attempts: 0, refusals: {}, networkErrors: 0 };
  try {
    broker = await launch(target, opts);
    infos[target] ??= { version: broker.version, launch: broker.launch };
    await sleep(1000);
    baseRssMiB = process.memoryUsage().rss / 1024 / 1024;
    fleet = new Fleet({
      target: { host: broker.host, port: broker.port },
      devices: opts.devices,
      idPrefix: 'storm-',
      protocolVersion: 4,
      keepaliveSec: 600,
      rampPerSec: 1_000_000,
      maxConnecting: opts.maxConnecting,
      policy: 'fleet',
      sourceAddresses: SOURCES,
      connectTimeoutMs: 30_000,
    });
    const f = fleet;
    const failed = (s: FleetStats) =>
      `${s.connected}/${s.devices} connected, refusals ${JSON.stringify(s.refusals)}, network errors ${s.networkErrors}`;

    if (opts.kind === 'connect-storm') {
      const tracker = new Tracker(f, () => true);
      const cpu0 = broker.cpuMs();
      const simCpu0 = process.cpuUsage();
      const t0 = performance.now();
      await f.start();
      const done = await f.waitFor((s) => s.connected === s.devices, opts.deadlineMs).catch(() => null);
      const elapsed = performance.now() - t0;
      const s = done ?? f.stats();
      const mem = process.memoryUsage();
      const handshakes = [...tracker.handshakes].sort((a, b) => a - b);
      const times = tracker.connectedAt.map((t) => t - t0).sort((a, b) => a - b);
      const r: StormResult = {
        ok: done !== null,
        note: done ? null : `deadline: ${failed(s)}`,
        devices: opts.devices,
        allConnectedMs: done ? elapsed : null,
        p99ConnectedMs: percentile(times, 99),
        connectsPerSec: done ? (opts.devices / elapsed) * 1000 : null,
        handshakeP50Ms: percentile(handshakes, 50),
        handshakeP99Ms: percentile(handshakes, 99),
        attempts: s.attempts,
        refusals: s.refusals,
        networkErrors: s.networkErrors,
        brokerRssKiB: broker.rssKiB(),
        brokerCpuMs: broker.cpuMs() - cpu0,
        simulatorCpuMs: cpuMs(process.cpuUsage(simCpu0)),
        simulatorRssMiB: mem.rss / 1024 / 1024,
        simulatorBaseRssMiB: baseRssMiB,
        simulatorHeapMiB: mem.heapUsed / 1024 / 1024,
      };
      log(
        `  ${target}: ${fmtNumber(r.connectsPerSec)} connects/s, simulator RSS ${fmtNumber(r.simulatorRssMiB)} MiB`,
      );
      return r;
    }

    // reboot-storm: connect everyone first (not measured), then the wave.
    await f.start();
    await f.waitFor((s) => s.connected === s.devices, opts.deadlineMs);
    await sleep(2000);
    const before = f.stats();
    const count = Math.round(opts.devices * opts.rebootFraction);
    let rebooted = new Set<string>();
    const tracker = new Tracker(f, (id) => rebooted.has(id));
    const cpu0 = broker.cpuMs();
    const simCpu0 = process.cpuUsage();
    const t0 = performance.now();
    rebooted = new Set(f.reboot(count, opts.rebootDownMs));
    const done = await f
      .waitFor((s) => s.connected === s.devices && s.connacksOk >= before.connacksOk + count, opts.deadlineMs)
      .catch(() => null);
    const elapsed = performance.now() - t0;
    tracker.active = false;
    const s = done ?? f.stats();
    const mem = process.memoryUsage();
    const times = tracker.connectedAt.map((t) => t - t0).sort((a, b) => a - b);
    const handshakes = [...tracker.handshakes].sort((a, b) => a - b);
    const r: StormResult = {
      ok: done !== null,
      note: done ? null : `deadline: ${failed(s)}`,
      devices: count,
      allConnectedMs: done ? elapsed : null,
      p99ConnectedMs: percentile(times, 99),
      // Reconnects per second over the storm's own span: first boot attempt to last CONNACK.
      connectsPerSec:
        done && tracker.firstAttemptAt !== null
          ? (count / Math.max(1, t0 + elapsed - tracker.firstAttemptAt)) * 1000
          : null,
      recoveryMs: done && tracker.firstAttemptAt !== null ? t0 + elapsed - tracker.firstAttemptAt : null,
      handshakeP50Ms: percentile(handshakes, 50),
      handshakeP99Ms: percentile(handshakes, 99),
      attempts: s.attempts - before.attempts,
      refusals: Object.fromEntries(
        Object.entries(s.refusals).map(([k, v]) => [k, v - (before.refusals[k] ?? 0)]),
      ),
      networkErrors: s.networkErrors - before.networkErrors,
      brokerRssKiB: broker.rssKiB(),
      brokerCpuMs: broker.cpuMs() - cpu0,
      simulatorCpuMs: cpuMs(process.cpuUsage(simCpu0)),
      simulatorRssMiB: mem.rss / 1024 / 1024,
      simulatorBaseRssMiB: baseRssMiB,
      simulatorHeapMiB: mem.heapUsed / 1024 / 1024,
    };
    log(
      `  ${target}: all back in ${fmtNumber(r.allConnectedMs)} ms, handshake p99 ${fmtNumber(r.handshakeP99Ms, 1)} ms`,
    );
    return r;
  } catch (err) {
    const mem = process.memoryUsage();
    const alive = broker ? (broker.alive() ? '' : ' (the broker process had exited)') : '';
    return {
      ok: false,
      note: `${(err as Error).message}${alive}`,
      devices: opts.devices,
      allConnectedMs: null,
      p99ConnectedMs: null,
      connectsPerSec: null,
      handshakeP50Ms: null,
      handshakeP99Ms: null,
      ...empty,
      ...(fleet
        ? {
            attempts: fleet.stats().attempts,
            refusals: fleet.stats().refusals,
            networkErrors: fleet.stats().networkErrors,
          }
        : {}),
      brokerRssKiB: null,
      brokerCpuMs: null,
      simulatorCpuMs: null,
      simulatorRssMiB: mem.rss / 1024 / 1024,
      simulatorBaseRssMiB: baseRssMiB,
      simulatorHeapMiB: mem.heapUsed / 1024 / 1024,
    };
  } finally {
    await fleet?.stop();
    await broker?.stop();
    // Let TIME_WAIT sockets and the broker's memory go before the next broker starts.
    await sleep(2000);
  }
}

export async function runStorm(
  opts: StormOptions,
  log: (line: string) => void,
): Promise<{
  results: Partial<Record<StormTarget, StormResult>>;
  brokers: Partial<Record<StormTarget, BrokerInfo>>;
}> {
  const infos: Partial<Record<StormTarget, BrokerInfo>> = {};
  const results: Partial<Record<StormTarget, StormResult>> = {};
  for (const target of opts.targets) {
    log(`${opts.kind} ${target}: ${fmtNumber(opts.devices)} devices`);
    const r = await runOne(target, opts, infos, log);
    results[target] = r;
    if (r.note) log(`  ${target}: ${r.note}`);
  }
  return { results, brokers: infos };
}

function fmtRefusals(r: Record<string, number>): string {
  const entries = Object.entries(r).filter(([, v]) => v > 0);
  return entries.length ? entries.map(([k, v]) => `${k} ${fmtNumber(v)}`).join(', ') : '0';
}

export function stormMarkdown(
  machine: MachineInfo,
  brokers: Partial<Record<StormTarget, BrokerInfo>>,
  results: Partial<Record<StormTarget, StormResult>>,
  opts: StormOptions,
): string {
  const title = opts.kind === 'connect-storm' ? '# Connect storm' : '# Reboot storm';
  const out: string[] = [title, '', machineMarkdown(machine)];
  for (const [name, info] of Object.entries(brokers))
    out.push(`- ${name} ${info.version}: \`${info.launch}\``);
  out.push('');
  if (opts.kind === 'connect-storm') {
    out.push(
      `${fmtNumber(opts.devices)} simulated devices (@breakwater/gameday Fleet, one process, MQTT 3.1.1, source addresses 127.0.0.1-8) ` +
        `connect from idle with at most ${opts.maxConnecting} handshakes in flight. Time = start until all are connected; ` +
        'connects/s = devices / time. `breakwater` runs with admission limits off (bench/brokers.ts ADMISSION_OFF_CONFIG), ' +
        '`breakwater-default` is plain `breakwater up` with every default on (no fixed connect rate; CONNECTs refused only while the event loop is saturated, ' +
        'tarpit on, flapping by short sessions, handshakes in flight ≤ 500 per listener): refused devices would follow the SDK fleet policy (5-15 s), which the time would then show. ' +
        'Ratios = Breakwater (admission off, or defaults) / peer connects/s: above 1 is better.',
    );
  } else {
    out.push(
      `${fmtNumber(opts.devices)} simulated devices connected, then ${fmtNumber(Math.round(opts.devices * opts.rebootFraction))} ` +
        `drop without DISCONNECT at once and come back after ${opts.rebootDownMs[0]}-${opts.rebootDownMs[1]} ms (uniform), connecting at once. ` +
        'Time = reboot until every device is connected again; reconnects/s = rebooted devices / (first boot attempt → last device back); handshake = attempt → CONNACK of the rebooted devices. ' +
        'Refused or failed attempts follow the SDK fleet policy (5-15 s). `breakwater` = admission off, `breakwater-default` = default admission. ' +
        'Ratio = Breakwater (admission off) / peer reconnects/s: above 1 is better.',
    );
  }
  out.push('');
  const bw = results.breakwater;
  out.push(
    table(
      [
        'broker',
        'devices measured',
        opts.kind === 'connect-storm' ? 'all connected ms' : 'all back ms',
        'p99 ms',
        ...(opts.kind === 'reboot-storm' ? ['first boot → all back ms'] : []),
        opts.kind === 'connect-storm' ? 'connects/s' : 'reconnects/s',
        'ratio BW/peer',
        'ratio BW default/peer',
        'handshake p50 / p99 ms',
        'attempts',
        'refusals',
        'network errors',
        'broker RSS MiB',
        'broker CPU s',
        'broker CPU µs/connect',
        'simulator CPU s',
        'bench process RSS MiB (before fleet)',
        'notes',
      ],
      Object.entries(results).map(([name, r]) => [
        name,
        fmtNumber(r.devices),
        fmtNumber(r.allConnectedMs),
        fmtNumber(r.p99ConnectedMs),
        ...(opts.kind === 'reboot-storm' ? [fmtNumber(r.recoveryMs)] : []),
        fmtNumber(r.connectsPerSec),
        (name === 'mosquitto' || name === 'aedes') && bw?.ok && r.ok
          ? fmtRatio(bw.connectsPerSec, r.connectsPerSec)
          : '',
        (name === 'mosquitto' || name === 'aedes') && results['breakwater-default']?.ok && r.ok
          ? fmtRatio(results['breakwater-default'].connectsPerSec, r.connectsPerSec)
          : '',
        `${fmtNumber(r.handshakeP50Ms, 1)} / ${fmtNumber(r.handshakeP99Ms, 1)}`,
        fmtNumber(r.attempts),
        fmtRefusals(r.refusals),
        fmtNumber(r.networkErrors),
        r.brokerRssKiB === null ? 'n/a' : fmtNumber(r.brokerRssKiB / 1024),
        r.brokerCpuMs === null ? 'n/a' : fmtNumber(r.brokerCpuMs / 1000, 1),
        r.brokerCpuMs === null || r.attempts === 0 ? 'n/a' : fmtNumber((r.brokerCpuMs * 1000) / r.attempts),
        r.simulatorCpuMs === null ? 'n/a' : fmtNumber(r.simulatorCpuMs / 1000, 1),
        `${fmtNumber(r.simulatorRssMiB)} (${fmtNumber(r.simulatorBaseRssMiB)})`,
        r.note ?? '',
      ]),
    ),
  );
  return out.join('\n');
}
