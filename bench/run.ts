/**
 * Breakwater's benchmark against Mosquitto and Aedes (issue 2, "Benchmark"). Not a test; nothing
 * here runs in CI.
 *
 *   npm run bench -- throughput   [--brokers breakwater,mosquitto,aedes] [--scenarios fan-in,fan-out,qos1-pairs]
 *                                 [--warmup 2] [--window 6] [--latency-load 0.5]
 *   npm run bench -- idle-memory  [--brokers ...] [--connections 10000] [--warmup-connections 5000] [--connects-per-sec 600]
 *   npm run bench -- connect-storm [--brokers breakwater,mosquitto,aedes,breakwater-default] [--devices 15000] [--max-connecting 200]
 *   npm run bench -- reboot-storm  [--brokers ...] [--devices 12000] [--reboot-fraction 0.333]
 *   npm run bench -- soak          [--connections 15000] [--duration-min 60] [--workers 3] [--admission default|off] (issue 13)
 *   npm run bench -- topics       (in-process micro-benchmark of topic matching)
 *   npm run bench -- socket-floor [--connections 10000] (an idle connection's cost in Node.js itself: net.Socket vs the bare TCP handle)
 *   npm run bench -- fanout-encode (in-process micro-benchmark of QoS 0 fan-out encoding, v3/v5/Topic Aliases)
 *   npm run bench -- authz        (in-process micro-benchmark of the publish authorization: cached decision vs rule walk)
 *   npm run bench -- auth-storm   [--quick] [--devices 5000] (issue 3; bench/auth-storm/README.md)
 *   npm run bench -- node-loss    [--devices 12000] [--firmware fleet,naive] (issue 15 game day: kill -9 of one of 3 nodes)
 *   npm run bench -- cluster      [--brokers breakwater-1,breakwater-3,nats-mqtt] [--scenarios fan-in,qos1] (issue 15)
 *   npm run bench -- integration  [--messages 100000] [--skip-fan-in] (issue 16: msgs/s per sink, fan-in cost)
 *   common: [--breakwater auto|cli|cli-source|script] [--name <results file name>]
 *
 * Results go to bench/results/<name>.json and .md (name defaults to the benchmark's).
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { authStormCommand } from './auth-storm/command.js';
import { type BreakwaterLaunch, type BrokerName, BrokerNames } from './brokers.js';
import { integrationCommand } from './integration.js';
import { liveChildren } from './loadgen/pool.js';
import { type MachineInfo, machineInfo, RESULTS_DIR, writeResults } from './report.js';
import { runAuthz } from './scenarios/authz.js';
import {
  type ClusterScenario,
  ClusterScenarios,
  type ClusterTarget,
  ClusterTargets,
  clusterMarkdown,
  runClusterThroughput,
} from './scenarios/cluster-throughput.js';
import { runFanoutEncode } from './scenarios/fanout-encode.js';
import {
  runStorm,
  type StormKind,
  type StormTarget,
  StormTargets,
  stormMarkdown,
} from './scenarios/fleet-storms.js';
import { idleMemoryMarkdown, runIdleMemory } from './scenarios/idle-memory.js';
import {
  type NodeLossFirmware,
  NodeLossFirmwares,
  type NodeLossResult,
  nodeLossMarkdown,
  runNodeLoss,
} from './scenarios/node-loss.js';
import { runSoak, type SoakOptions, soakMarkdown, soakSvg, writeSoakSvg } from './scenarios/soak.js';
import { runSocketFloor, socketFloorMarkdown } from './scenarios/socket-floor.js';
import { runThroughput, type ScenarioId, ScenarioIds, throughputMarkdown } from './scenarios/throughput.js';
import { runTopics } from './scenarios/topics.js';

function killAll(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
}
// Whatever ends this process, no broker or load generator outlives it.
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping children\n`);
    killAll();
    process.exit(130);
  });
}

function list<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T[] {
  if (value === undefined) return [...allowed];
  const items = value.split(',').map((s) => s.trim());
  for (const item of items) {
    if (!allowed.includes(item as T))
      throw new Error(`--${flag}: unknown '${item}' (allowed: ${allowed.join(', ')})`);
  }
  return items as T[];
}

function log(line: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function main(): Promise<number> {
  if (process.argv[2] === 'auth-storm') return authStormCommand(process.argv.slice(3), log);
  if (process.argv[2] === 'integration') return integrationCommand(process.argv.slice(3), log);
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      brokers: { type: 'string' },
      scenarios: { type: 'string' },
      firmware: { type: 'string' },
      breakwater: { type: 'string', default: 'auto' },
      name: { type: 'string' },
      warmup: { type: 'string', default: '2' },
      window: { type: 'string', default: '6' },
      'latency-load': { type: 'string', default: '0.5' },
      connections: { type: 'string' },
      'connects-per-sec': { type: 'string', default: '600' },
      'warmup-connections': { type: 'string' },
      devices: { type: 'string' },
      'max-connecting': { type: 'string', default: '200' },
      'reboot-fraction': { type: 'string', default: '0.333' },
      'duration-min': { type: 'string', default: '60' },
      'warmup-min': { type: 'string', default: '5' },
      workers: { type: 'string', default: '3' },
      'reboots-per-sec': { type: 'string', default: '3' },
      churners: { type: 'string', default: '2' },
      'telemetry-interval-s': { type: 'string', default: '60' },
      'keepalive-s': { type: 'string', default: '120' },
      admission: { type: 'string', default: 'default' },
      note: { type: 'string' },
    },
  });
  const kind = positionals[0];
  if (kind === 'node-loss') {
    const machine = machineInfo();
    const started = Date.now();
    const devices = Number(values.devices ?? 12_000);
    const results: NodeLossResult[] = [];
    // Both firmware kinds, each on a fresh cluster: the SDK's fleet policy and fixed 1-s retries.
    for (const firmware of list<NodeLossFirmware>(values.firmware, NodeLossFirmwares, 'firmware')) {
      log(`node loss, ${firmware} firmware`);
      results.push(await runNodeLoss({ devices, firmware, log }));
    }
    const git = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const files = writeResults(
      values.name ?? 'node-loss',
      { benchmark: 'node-loss', machine, git, results, durationS: (Date.now() - started) / 1000 },
      nodeLossMarkdown(machine, results, git),
    );
    log(`wrote ${files.json} and ${files.md}`);
    return 0;
  }
  if (kind === 'cluster') {
    const opts = {
      targets: list<ClusterTarget>(values.brokers, ClusterTargets, 'brokers'),
      scenarios: list<ClusterScenario>(values.scenarios, ClusterScenarios, 'scenarios'),
      warmupMs: Number(values.warmup === '2' ? 3 : values.warmup) * 1000,
      windowMs: Number(values.window === '6' ? 8 : values.window) * 1000,
      log,
    };
    const machine = machineInfo();
    const started = Date.now();
    const run = await runClusterThroughput(opts);
    const git = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const files = writeResults(
      values.name ?? 'cluster-throughput',
      {
        benchmark: 'cluster-throughput',
        machine,
        git,
        targets: run.describe,
        options: {
          targets: opts.targets,
          scenarios: opts.scenarios,
          warmupMs: opts.warmupMs,
          windowMs: opts.windowMs,
        },
        results: run.results,
        durationS: (Date.now() - started) / 1000,
      },
      clusterMarkdown(machine, run, opts, git),
    );
    log(`wrote ${files.json} and ${files.md}`);
    return 0;
  }
  if (kind === 'connect-storm' || kind === 'reboot-storm') {
    const breakwaterLaunch = values.breakwater as BreakwaterLaunch;
    const opts = {
      kind: kind as StormKind,
      targets: list<StormTarget>(values.brokers, StormTargets, 'brokers'),
      breakwater: breakwaterLaunch,
      devices: Number(values.devices ?? (kind === 'connect-storm' ? 15_000 : 12_000)),
      maxConnecting: Number(values['max-connecting']),
      rebootFraction: Number(values['reboot-fraction']),
      rebootDownMs: [1000, 1250] as [number, number],
      deadlineMs: 120_000,
    };
    const machine = machineInfo();
    const started = Date.now();
    const { results, brokers: infos } = await runStorm(opts, log);
    const files = writeResults(
      values.name ?? kind,
      {
        benchmark: kind,
        machine,
        brokers: infos,
        options: opts,
        results,
        durationS: (Date.now() - started) / 1000,
      },
      stormMarkdown(machine, infos, results, opts),
    );
    log(`wrote ${files.json} and ${files.md}`);
    return 0;
  }
  if (kind === 'soak-report') {
    // Re-render results/<name>.md and .svg from results/<name>.json (report changes, no re-run).
    const name = values.name ?? 'soak';
    const saved = JSON.parse(readFileSync(join(RESULTS_DIR, `${name}.json`), 'utf8')) as {
      machine: MachineInfo;
      broker: { version: string; launch: string };
      options: SoakOptions;
      result: Awaited<ReturnType<typeof runSoak>>['result'];
    };
    writeResults(
      name,
      saved,
      soakMarkdown(values.note, name, saved.machine, saved.broker, saved.result, saved.options),
    );
    writeSoakSvg(name, soakSvg(saved.result));
    log(`re-rendered results/${name}.md and .svg`);
    return 0;
  }
  if (kind === 'soak') {
    if (values.admission !== 'default' && values.admission !== 'off') {
      throw new Error(`--admission must be default or off (got ${values.admission})`);
    }
    const opts: SoakOptions = {
      admissionOff: values.admission === 'off',
      connections: Number(values.connections ?? 15_000),
      durationMin: Number(values['duration-min']),
      warmupMin: Number(values['warmup-min']),
      workers: Number(values.workers),
      sampleEveryS: 10,
      telemetryIntervalMs: Number(values['telemetry-interval-s']) * 1000,
      rebootsPerSec: Number(values['reboots-per-sec']),
      churnersPerWorker: Number(values.churners),
      rampPerSec: 500,
      keepaliveSec: Number(values['keepalive-s']),
      loadNice: getPriority(),
    };
    const name = values.name ?? 'soak';
    const machine = machineInfo();
    const save = (
      r: Awaited<ReturnType<typeof runSoak>>['result'],
      broker: { version: string; launch: string },
    ) => {
      writeResults(
        name,
        { benchmark: 'soak', machine, broker, options: opts, result: r },
        soakMarkdown(undefined, name, machine, broker, r, opts),
      );
      return writeSoakSvg(name, soakSvg(r));
    };
    const pending = { version: '', launch: '' };
    const { result, broker } = await runSoak(opts, log, (partial) => save(partial, pending));
    const svg = save(result, broker);
    log(`wrote results/${name}.json, .md and ${svg}: ${result.ok ? 'ok' : result.notes.join('; ')}`);
    return result.ok ? 0 : 1;
  }
  const brokers = list<BrokerName>(values.brokers, BrokerNames, 'brokers');
  const breakwater = values.breakwater as BreakwaterLaunch;
  if (!['auto', 'cli', 'cli-source', 'script'].includes(breakwater))
    throw new Error('--breakwater must be auto, cli, cli-source or script');
  const machine = machineInfo();
  const started = Date.now();

  if (kind === 'throughput') {
    const opts = {
      brokers,
      scenarios: list<ScenarioId>(values.scenarios, ScenarioIds, 'scenarios'),
      breakwater,
      warmupMs: Number(values.warmup) * 1000,
      windowMs: Number(values.window) * 1000,
      latencyLoad: Number(values['latency-load']),
      payloadSize: 64,
      qos1Window: 64,
      runTimeoutMs: 90_000,
    };
    const { scenarios, brokers: infos } = await runThroughput(opts, log);
    const name = values.name ?? 'throughput';
    const files = writeResults(
      name,
      {
        benchmark: 'throughput',
        machine,
        brokers: infos,
        options: opts,
        scenarios,
        durationS: (Date.now() - started) / 1000,
      },
      throughputMarkdown(machine, infos, scenarios, opts),
    );
    log(`wrote ${files.json} and ${files.md}`);
    return 0;
  }
  if (kind === 'idle-memory') {
    const opts = {
      brokers,
      breakwater,
      connections: Number(values.connections ?? 10_000),
      connectsPerSec: Number(values['connects-per-sec']),
      warmupConnections: nonNegativeInt('--warmup-connections', values['warmup-connections'] ?? '5000'),
    };
    const { results, brokers: infos } = await runIdleMemory(opts, log);
    const name = values.name ?? 'idle-memory';
    const files = writeResults(
      name,
      {
        benchmark: 'idle-memory',
        machine,
        brokers: infos,
        options: opts,
        results,
        durationS: (Date.now() - started) / 1000,
      },
      idleMemoryMarkdown(machine, infos, results, opts),
    );
    log(`wrote ${files.json} and ${files.md}`);
    return 0;
  }
  if (kind === 'topics') {
    runTopics(log);
    return 0;
  }
  if (kind === 'authz') {
    await runAuthz(log);
    return 0;
  }
  if (kind === 'socket-floor') {
    const rows = await runSocketFloor(Number(values.connections ?? 10_000), log);
    const machine = machineInfo();
    const files = writeResults(
      values.name ?? 'socket-floor',
      { benchmark: 'socket-floor', machine, rows },
      socketFloorMarkdown(machine, rows),
    );
    log(`wrote ${files.json} and ${files.md}`);
    return 0;
  }
  if (kind === 'fanout-encode') {
    await runFanoutEncode(log);
    return 0;
  }
  process.stderr.write(
    'usage: npm run bench -- throughput|idle-memory|connect-storm|reboot-storm|soak|topics|socket-floor|fanout-encode|authz|auth-storm [options] (see bench/run.ts)\n',
  );
  return 2;
}

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? err}\n`);
    killAll();
    process.exit(1);
  },
);

/** A count flag: a whole number ≥ 0, or an error naming the flag. */
function nonNegativeInt(flag: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a whole number >= 0 (got ${raw})`);
  return n;
}
