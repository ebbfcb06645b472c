/**
 * One soak load process (forked by bench/scenarios/soak.ts): a game-day Fleet of simulated devices
 * (QoS 1 telemetry, SUBSCRIBE to their fleet topics on every connect, reboot churn without
 * DISCONNECT) plus "churners": mqtt.js clients that connect, subscribe, publish QoS 1, receive
 * their own message and leave, half with a clean DISCONNECT and half by dropping the socket, over
 * and over, from a bounded pool of client ids with persistent sessions (so sessions are reused,
 * never accumulated). Several processes share the load because one process may hold at most
 * 20,000 file descriptors.
 *
 * IPC: the parent sends { op: 'start', config }, { op: 'stats' }, { op: 'quiesce' }, { op: 'stop' };
 * the worker answers each with { op, value }.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet, type FleetStats } from '@breakwater/gameday';
import mqtt from 'mqtt';

export interface SoakWorkerConfig {
  readonly index: number;
  readonly host: string;
  readonly port: number;
  readonly devices: number;
  readonly sources: string[];
  readonly rampPerSec: number;
  readonly keepaliveSec: number;
  readonly telemetryIntervalMs: number;
  /** Every `churnEveryMs`, this many connected devices drop without DISCONNECT and come back. */
  readonly rebootPerTick: number;
  readonly churnEveryMs: number;
  readonly rebootDownMs: [number, number];
  /** Concurrent churner loops, and the pool of client ids they cycle through. */
  readonly churners: number;
  readonly churnerIds: number;
  /** Pause between two cycles of one churner. */
  readonly churnerPauseMs: number;
}

export interface ChurnStats {
  cycles: number;
  cleanDisconnects: number;
  drops: number;
  failures: number;
  lastError: string | null;
}

export interface SoakWorkerStats {
  readonly fleet: FleetStats;
  readonly churn: ChurnStats;
  readonly rssMiB: number;
}

type Request =
  | { op: 'start'; config: SoakWorkerConfig }
  | { op: 'stats' }
  | { op: 'quiesce' }
  | { op: 'stop' };

let fleet: Fleet | null = null;
let running = true;
let churnTimer: NodeJS.Timeout | null = null;
const churn: ChurnStats = { cycles: 0, cleanDisconnects: 0, drops: 0, failures: 0, lastError: null };
const churnLoops: Promise<void>[] = [];

function reply(op: string, value: unknown): void {
  process.send?.({ op, value });
}

/** One connect → subscribe → publish QoS 1 → receive → leave cycle. */
async function churnCycle(cfg: SoakWorkerConfig, loop: number, n: number): Promise<void> {
  const idIndex = (loop + n * cfg.churners) % cfg.churnerIds;
  const clientId = `soak-churn-${cfg.index}-${idIndex}`;
  const v5 = idIndex % 2 === 0;
  const topic = `soak/churn/${clientId}`;
  const client = await mqtt.connectAsync(
    `mqtt://${cfg.host}:${cfg.port}`,
    {
      clientId,
      protocolVersion: v5 ? 5 : 4,
      clean: false,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: 60_000,
      ...(v5 ? { properties: { sessionExpiryInterval: 120 } } : {}),
    },
    false,
  );
  try {
    const got = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('own QoS 1 message not received in 60 s')), 60_000);
      client.on('message', (t) => {
        if (t === topic) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await client.subscribeAsync(topic, { qos: 1 });
    await client.publishAsync(topic, `cycle ${n}`, { qos: 1 });
    await got;
    churn.cycles++;
  } finally {
    if (n % 2 === 0) {
      await client.endAsync();
      churn.cleanDisconnects++;
    } else {
      client.stream.destroy();
      client.end(true);
      churn.drops++;
    }
  }
}

async function churnLoop(cfg: SoakWorkerConfig, loop: number): Promise<void> {
  let n = 0;
  while (running) {
    try {
      await churnCycle(cfg, loop, n);
    } catch (err) {
      churn.failures++;
      churn.lastError = (err as Error).message;
    }
    n++;
    await sleep(cfg.churnerPauseMs * (0.5 + Math.random()));
  }
}

async function start(cfg: SoakWorkerConfig): Promise<void> {
  fleet = new Fleet({
    target: { host: cfg.host, port: cfg.port },
    devices: cfg.devices,
    idPrefix: `soak-${cfg.index}-`,
    protocolVersion: cfg.index % 2 === 0 ? 4 : 5,
    keepaliveSec: cfg.keepaliveSec,
    rampPerSec: cfg.rampPerSec,
    policy: 'fleet',
    sourceAddresses: cfg.sources,
    connectTimeoutMs: 60_000,
    subscribeFleetTopics: true,
    telemetry: { intervalMs: cfg.telemetryIntervalMs, qos: 1 },
  });
  await fleet.start();
  const f = fleet;
  churnTimer = setInterval(() => {
    if (cfg.rebootPerTick > 0) f.reboot(cfg.rebootPerTick, cfg.rebootDownMs);
  }, cfg.churnEveryMs);
  for (let i = 0; i < cfg.churners; i++) churnLoops.push(churnLoop(cfg, i));
}

function stats(): SoakWorkerStats {
  return {
    fleet: fleet!.stats(),
    churn: { ...churn },
    rssMiB: process.memoryUsage().rss / 1024 / 1024,
  };
}

process.on('message', (msg: Request) => {
  void (async () => {
    try {
      switch (msg.op) {
        case 'start':
          await start(msg.config);
          reply('start', null);
          break;
        case 'stats':
          reply('stats', stats());
          break;
        case 'quiesce':
          // End of the run: no more churn or telemetry, so every acknowledged message can arrive.
          running = false;
          if (churnTimer) clearInterval(churnTimer);
          fleet?.setTelemetry(null);
          // Churners in a connect or receive wait (60 s) are not waited for beyond 20 s.
          await Promise.race([Promise.all(churnLoops), sleep(20_000)]);
          reply('quiesce', null);
          break;
        case 'stop':
          await fleet?.stop();
          reply('stop', null);
          setTimeout(() => process.exit(0), 50);
          break;
      }
    } catch (err) {
      reply(msg.op, { error: (err as Error).stack ?? String(err) });
    }
  })();
});
process.on('disconnect', () => process.exit(0));
