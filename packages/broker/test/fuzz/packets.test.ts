// Fuzzing the packet boundary over real sockets: thousands of random and mutated packets on many
// short-lived connections, then proof that the broker is still up and correct (a fresh client
// round-trips) and, for the in-process Breakwater, that no server-side socket leaked.
// Reproduce a failure with the printed seed: BW_FUZZ_SEED=<seed> npm test -- packages/broker/test/fuzz
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt-packet';
import { chunks, encode, MUTATIONS, type Mutation, mutate, Prng, randomPacket } from '../support/fuzz.js';
import { endAllRaw, nextPublish, publish, rawConnected, rawSocket, subscribe } from '../support/raw.js';
import { type Target, target, uniqueId } from '../support/target.js';

const SEED = Number(process.env.BW_FUZZ_SEED ?? randomInt(2 ** 31));
const PACKETS = Number(process.env.BW_FUZZ_PACKETS ?? 12_000);
const CONCURRENCY = 32;
/** Upper bound on the generating phase so the file stays well under a minute on a slow machine. */
const BUDGET_MS = 25_000;

let broker: Target;
let prefix: string;
before(async () => {
  broker = await target();
  prefix = `bw-fuzz/${uniqueId('f')}`;
});
after(async () => {
  await endAllRaw();
  await broker.close();
});

const withSeed = (msg: string) => `${msg} (seed ${SEED}; rerun with BW_FUZZ_SEED=${SEED})`;

interface Stats {
  sessions: number;
  packets: number;
  bytes: number;
  forcedClose: number;
  refused: number;
  byMutation: Record<string, number>;
}

/** One short-lived connection: maybe a valid CONNECT, then valid and mutated packets in random chunks. */
async function fuzzSession(index: number, stats: Stats): Promise<void> {
  const r = new Prng((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const v = r.bool() ? 4 : 5;
  const clientId = `bw-fuzz-${SEED}-${index}`;
  const parts: Buffer[] = [];
  if (r.bool(0.8)) {
    const connect = encode(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clientId, clean: true, keepalive: 30 },
      v,
    );
    if (connect) parts.push(connect);
  }
  const n = 1 + r.int(30);
  for (let i = 0; i < n; i++) {
    const bytes = encode(randomPacket(r, v, prefix, clientId), v);
    if (!bytes) continue;
    const kind: Mutation = r.bool(0.35) ? 'none' : r.pick(MUTATIONS);
    stats.byMutation[kind] = (stats.byMutation[kind] ?? 0) + 1;
    parts.push(mutate(r, bytes, kind));
  }
  stats.sessions++;
  stats.packets += parts.length;

  const socket = net.connect({ host: broker.host, port: broker.port });
  socket.on('error', () => {}); // resets are expected: the broker closes on bad input
  socket.resume(); // discard whatever the broker answers
  // Not events.once: it rejects on 'error', and resets/EPIPE are normal here.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const connected = await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('close', () => resolve(false));
  });
  if (!connected) {
    stats.refused++;
    return;
  }
  for (const part of parts) {
    for (const chunk of chunks(r, part)) {
      if (socket.destroyed || !socket.writable) break;
      stats.bytes += chunk.length;
      if (!socket.write(chunk)) {
        await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
      }
      // Sometimes yield so chunks travel as separate TCP segments.
      if (r.bool(0.2)) await new Promise((resolve) => setImmediate(resolve));
    }
  }
  // Half-close, and give the broker a moment to close its side; otherwise cut the socket.
  if (!socket.destroyed) socket.end();
  const timer = setTimeout(() => {
    stats.forcedClose++;
    socket.destroy();
  }, 3000);
  await closed;
  clearTimeout(timer);
}

async function roundTrip(v: 4 | 5): Promise<void> {
  const topic = `${prefix}/after/${v}`;
  const { client } = await rawConnected(broker, v, { clientId: uniqueId('after') });
  assert.equal(await subscribe(client, topic, { qos: 1 }), 1, withSeed('SUBACK after fuzzing'));
  await publish(client, topic, 'alive', { qos: 1, messageId: 9 });
  const p = await nextPublish(client, topic);
  assert.equal(p.payload.toString(), 'alive', withSeed('QoS 1 round trip after fuzzing'));
  client.send({ cmd: 'puback', messageId: p.messageId });
  await client.end();
}

async function socketsDrainToZero(): Promise<void> {
  const openSockets = broker.openSockets;
  if (!openSockets) return; // external broker: not observable
  const deadline = Date.now() + 10_000;
  while (openSockets() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(openSockets(), 0, withSeed('server-side sockets left open after every client closed'));
}

/** Sum of a prom-client metric's values over all label sets. */
async function metricSum(metric: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}

/**
 * Breakwater-specific (its metrics): after the fuzz, the connection gauges are back to zero and
 * the protocol-error counter saw the bad input.
 */
async function metricsSettle(): Promise<void> {
  const m = broker.metrics;
  if (!m) return;
  const gauges = { open: m.openSockets, withoutConnect: m.socketsWithoutConnect, connections: m.connections };
  const read = async () => ({
    open: await metricSum(gauges.open),
    withoutConnect: await metricSum(gauges.withoutConnect),
    connections: await metricSum(gauges.connections),
  });
  const deadline = Date.now() + 10_000;
  let now = await read();
  while ((now.open || now.withoutConnect || now.connections) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    now = await read();
  }
  assert.deepEqual(
    now,
    { open: 0, withoutConnect: 0, connections: 0 },
    withSeed('connection gauges after fuzzing'),
  );
  assert.ok(
    (await metricSum(m.protocolErrors)) > 0,
    withSeed('breakwater_protocol_errors_total counted the bad input'),
  );
}

describe('fuzz', () => {
  test(`random and mutated packets on many short-lived sockets leave the broker up and correct`, async (t) => {
    t.diagnostic(`fuzz seed ${SEED} (BW_FUZZ_SEED to replay), target ${broker.kind} ${broker.url}`);
    const stats: Stats = { sessions: 0, packets: 0, bytes: 0, forcedClose: 0, refused: 0, byMutation: {} };
    const budgetEnd = Date.now() + BUDGET_MS;
    let next = 0;
    const worker = async () => {
      while (stats.packets < PACKETS && Date.now() < budgetEnd) await fuzzSession(next++, stats);
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    t.diagnostic(
      `sent ${stats.packets} packets (${stats.bytes} bytes) on ${stats.sessions} sockets; ` +
        `${stats.forcedClose} needed a client-side close, ${stats.refused} refused; ${JSON.stringify(stats.byMutation)}`,
    );
    assert.equal(stats.refused, 0, withSeed('the broker stopped accepting connections'));
    await roundTrip(4);
    await roundTrip(5);
    await socketsDrainToZero();
    await metricsSettle();
  });

  for (const v of [4, 5] as const) {
    test(`a valid packet stream split at every byte offset parses identically (v${v})`, async (t) => {
      const topicOf = (i: number) => `${prefix}/split${v}/${i}`;
      const stream = (i: number): Buffer => {
        const topic = topicOf(i);
        const packets: mqtt.Packet[] = [
          {
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: v,
            clientId: uniqueId(`split${i}`),
            clean: true,
            keepalive: 30,
            ...(v === 5 ? { properties: { sessionExpiryInterval: 0, receiveMaximum: 10 } } : {}),
          } as mqtt.IConnectPacket,
          {
            cmd: 'subscribe',
            messageId: 1,
            subscriptions: [{ topic, qos: 2 }],
            ...(v === 5 ? { properties: { subscriptionIdentifier: 5 } } : {}),
          } as mqtt.ISubscribePacket,
          { cmd: 'publish', topic, payload: Buffer.from('q0'), qos: 0, retain: false, dup: false },
          {
            cmd: 'publish',
            topic,
            payload: Buffer.alloc(300, 0x31),
            qos: 1,
            messageId: 2,
            retain: false,
            dup: false,
            ...(v === 5 ? { properties: { userProperties: { k: 'v' }, contentType: 'x' } } : {}),
          } as mqtt.IPublishPacket,
          {
            cmd: 'publish',
            topic,
            payload: Buffer.from('q2'),
            qos: 2,
            messageId: 3,
            retain: false,
            dup: false,
          },
          { cmd: 'pubrel', messageId: 3 },
          { cmd: 'pingreq' },
          { cmd: 'unsubscribe', messageId: 4, unsubscriptions: [topic] },
        ];
        return Buffer.concat(packets.map((p) => mqtt.generate(p, { protocolVersion: v })));
      };
      const length = stream(0).length;
      const check = async (i: number, write: (socket: net.Socket, bytes: Buffer) => Promise<void>) => {
        const c = await rawSocket(broker, v);
        c.socket.setNoDelay(true);
        await write(c.socket, stream(i));
        const where = `split ${i} of ${length} bytes`;
        const connack = (await c.next('connack')) as mqtt.IConnackPacket;
        assert.equal(v === 5 ? connack.reasonCode : connack.returnCode, 0, where);
        assert.equal(((await c.next('suback')) as mqtt.ISubackPacket).granted[0], 2, where);
        assert.equal(((await c.next('puback')) as mqtt.IPubackPacket).messageId, 2, where);
        assert.equal(((await c.next('pubrec')) as mqtt.IPubrecPacket).messageId, 3, where);
        assert.equal(((await c.next('pubcomp')) as mqtt.IPubcompPacket).messageId, 3, where);
        await c.next('pingresp');
        assert.equal(((await c.next('unsuback')) as mqtt.IUnsubackPacket).messageId, 4, where);
        const payloads: string[] = [];
        for (let k = 0; k < 3; k++) {
          const p = await nextPublish(c, topicOf(i));
          payloads.push(p.payload.length === 300 ? 'q1' : p.payload.toString());
          if (v === 5) assert.deepEqual([p.properties?.subscriptionIdentifier].flat(), [5], where);
        }
        assert.deepEqual(payloads, ['q0', 'q1', 'q2'], where);
        await c.end();
      };
      const pause = () => new Promise((resolve) => setImmediate(resolve));
      // Two writes split at every offset (a yield between, so they are separate segments).
      const offsets = Array.from({ length: length - 1 }, (_, k) => k + 1);
      for (let k = 0; k < offsets.length; k += 16) {
        await Promise.all(
          offsets.slice(k, k + 16).map((at) =>
            check(at, async (s, b) => {
              s.write(b.subarray(0, at));
              await pause();
              s.write(b.subarray(at));
            }),
          ),
        );
      }
      // And the whole stream one byte per write.
      await check(0, async (s, b) => {
        for (let k = 0; k < b.length; k++) {
          s.write(b.subarray(k, k + 1));
          await pause();
        }
      });
      t.diagnostic(`checked ${offsets.length} split points and a byte-by-byte write of ${length} bytes`);
      await socketsDrainToZero();
    });
  }
});
