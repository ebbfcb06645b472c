/**
 * In-process micro-benchmark of the broker's outbound path (issue 13: Topic Aliases must not slow
 * the shared QoS 0 encoding): one publisher, N subscribers on in-memory streams that discard what
 * they are sent, QoS 0 on 16 topics of 31 characters. Modes: MQTT 3.1.1 subscribers, MQTT 5
 * without Topic Aliases, MQTT 5 with Topic Alias Maximum 16 (every delivery after the first of a
 * topic uses an alias). Prints deliveries/s, CPU time per delivery (steadier than wall time on a
 * shared machine), bytes written per delivery and GCs per million deliveries (a proxy for
 * allocation); no sockets, so the numbers are the engine's alone. Compare runs of this file only.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { Duplex } from 'node:stream';
import { Broker, MemoryStorage } from '@breakwater/broker';
import mqtt from 'mqtt-packet';

interface Sink {
  stream: Duplex;
  bytes: number;
}

function sink(): Sink {
  const s: Sink = { stream: null as unknown as Duplex, bytes: 0 };
  s.stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      s.bytes += chunk.length;
      cb();
    },
    writev(chunks, cb) {
      for (const c of chunks) s.bytes += (c.chunk as Buffer).length;
      cb();
    },
  });
  return s;
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

async function connect(broker: Broker, version: 4 | 5, properties?: mqtt.IConnectPacket['properties']) {
  const s = sink();
  broker.handle(s.stream, { listener: 'bench', transport: 'memory' });
  const opts = { protocolVersion: version };
  s.stream.push(
    mqtt.generate(
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: version,
        clientId: `c-${Math.random().toString(16).slice(2)}`,
        clean: true,
        keepalive: 0,
        ...(properties ? { properties } : {}),
      },
      opts,
    ),
  );
  s.stream.push(
    mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 0 }] }, opts),
  );
  return s;
}

async function runMode(
  label: string,
  subscribers: number,
  messages: number,
  version: 4 | 5,
  properties: mqtt.IConnectPacket['properties'] | undefined,
  log: (line: string) => void,
): Promise<void> {
  const broker = new Broker({ storage: new MemoryStorage() });
  await broker.start();
  const subs: Sink[] = [];
  for (let i = 0; i < subscribers; i++) subs.push(await connect(broker, version, properties));
  const pub = sink();
  broker.handle(pub.stream, { listener: 'bench', transport: 'memory' });
  pub.stream.push(
    mqtt.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'pub',
      clean: true,
      keepalive: 0,
    }),
  );
  await tick();
  await tick();
  const payload = Buffer.alloc(64, 0x61);
  const frames = Array.from({ length: 16 }, (_, i) =>
    mqtt.generate({
      cmd: 'publish',
      topic: `bench/${String(i).padStart(2, '0')}/telemetry/temperature`,
      payload,
      qos: 0,
      retain: false,
      dup: false,
    }),
  );
  const batch = Buffer.concat(Array.from({ length: 64 }, (_, i) => frames[i & 15]!));
  const send = async (n: number) => {
    for (let i = 0; i < n; i += 64) {
      pub.stream.push(batch);
      await tick();
    }
  };
  await send(Math.min(messages, 2048)); // warm-up: JIT, alias tables
  let gcs = 0;
  let gcMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcs++;
      gcMs += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const bytes0 = subs.reduce((n, s) => n + s.bytes, 0);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  await send(messages);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  await tick();
  obs.disconnect();
  const deliveries = messages * subscribers;
  const bytes = subs.reduce((n, x) => n + x.bytes, 0) - bytes0;
  log(
    `${label}: ${Math.round(deliveries / s).toLocaleString('en-US')} deliveries/s, ` +
      `${(((cpu.user + cpu.system) * 1000) / deliveries).toFixed(0)} ns CPU/delivery, ` +
      `${(bytes / deliveries).toFixed(1)} bytes/delivery, ` +
      `${((gcs * 1e6) / deliveries).toFixed(1)} GCs and ${((gcMs * 1e6) / deliveries).toFixed(0)} ms GC per 1M deliveries`,
  );
  await broker.close();
}

export async function runFanoutEncode(
  log: (line: string) => void,
  subscribers = 1000,
  messages = 4096,
): Promise<void> {
  log(
    `fan-out ${subscribers} subscribers × ${messages} QoS 0 messages, 64-byte payloads, 16 topics of 31 characters`,
  );
  await runMode('MQTT 3.1.1', subscribers, messages, 4, undefined, log);
  await runMode('MQTT 5, no Topic Alias Maximum', subscribers, messages, 5, undefined, log);
  await runMode('MQTT 5, Topic Alias Maximum 16', subscribers, messages, 5, { topicAliasMaximum: 16 }, log);
}
