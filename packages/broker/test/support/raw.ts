import assert from 'node:assert/strict';
import { type Packet, RawClient } from '@breakwater/testkit';
import type mqtt from 'mqtt-packet';
import type { Target } from './target.js';

/**
 * Raw-packet helpers for the black-box conformance and fuzz suites. Every client made here is
 * tracked so `endAllRaw()` (registered with `after`) closes it.
 */
const open = new Set<RawClient>();

export async function rawSocket(broker: Target, protocolVersion: 4 | 5 = 4): Promise<RawClient> {
  const c = await RawClient.connect(broker.port, { host: broker.host, protocolVersion });
  open.add(c);
  return c;
}

/** A raw client that sent CONNECT and got a successful CONNACK. */
export async function rawConnected(
  broker: Target,
  protocolVersion: 4 | 5,
  connect: Partial<mqtt.IConnectPacket> = {},
): Promise<{ client: RawClient; connack: mqtt.IConnackPacket }> {
  const client = await rawSocket(broker, protocolVersion);
  const connack = await client.connect({ protocolVersion, ...connect });
  const code = protocolVersion === 5 ? connack.reasonCode : connack.returnCode;
  assert.equal(code, 0, `CONNACK ${code}`);
  return { client, connack };
}

export async function endAllRaw(): Promise<void> {
  const all = [...open];
  open.clear();
  await Promise.all(all.map((c) => c.end()));
}

/**
 * Await the broker closing the socket (bounded). Returns the DISCONNECT it sent first, if any,
 * so a v5 test can check the reason code.
 */
export async function closedByBroker(
  client: RawClient,
  timeoutMs = 5000,
): Promise<mqtt.IDisconnectPacket | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`broker did not close the socket within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([client.closed(), timeout]);
  } finally {
    clearTimeout(timer);
  }
  const d = client.received.find((p) => p.cmd === 'disconnect');
  return d as mqtt.IDisconnectPacket | undefined;
}

/** Received packets of a type that have not been consumed by `next()` yet. */
export function pending(client: RawClient, cmd: Packet['cmd']): Packet[] {
  return client.received.filter((p) => p.cmd === cmd);
}

/**
 * PINGREQ → PINGRESP. TCP keeps order, and brokers write in processing order, so anything the
 * broker queued for this client before the PINGREQ was handled has arrived when this resolves.
 */
export async function sync(client: RawClient): Promise<void> {
  client.send({ cmd: 'pingreq' });
  await client.next('pingresp');
}

/** SUBSCRIBE one filter and await the SUBACK; returns the granted code. */
export async function subscribe(
  client: RawClient,
  topic: string,
  options: { qos?: 0 | 1 | 2; nl?: boolean; rap?: boolean; rh?: number } = {},
  properties?: mqtt.ISubscribePacket['properties'],
  messageId = 1,
): Promise<number> {
  client.send({
    cmd: 'subscribe',
    messageId,
    subscriptions: [{ topic, qos: options.qos ?? 0, nl: options.nl, rap: options.rap, rh: options.rh }],
    ...(properties ? { properties } : {}),
  } as mqtt.ISubscribePacket);
  const ack = (await client.next('suback')) as mqtt.ISubackPacket;
  assert.equal(ack.messageId, messageId);
  return ack.granted[0] as number;
}

/** PUBLISH and, for QoS 1/2, complete the handshake. */
export async function publish(
  client: RawClient,
  topic: string,
  payload: string | Buffer,
  options: {
    qos?: 0 | 1 | 2;
    retain?: boolean;
    messageId?: number;
    properties?: mqtt.IPublishPacket['properties'];
  } = {},
): Promise<void> {
  const qos = options.qos ?? 0;
  const messageId = options.messageId ?? 1;
  client.send({
    cmd: 'publish',
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos,
    retain: options.retain ?? false,
    dup: false,
    ...(qos > 0 ? { messageId } : {}),
    ...(options.properties ? { properties: options.properties } : {}),
  } as mqtt.IPublishPacket);
  if (qos === 1) {
    const ack = (await client.next('puback')) as mqtt.IPubackPacket;
    assert.equal(ack.messageId, messageId);
  } else if (qos === 2) {
    const rec = (await client.next('pubrec')) as mqtt.IPubrecPacket;
    assert.equal(rec.messageId, messageId);
    client.send({ cmd: 'pubrel', messageId });
    const comp = (await client.next('pubcomp')) as mqtt.IPubcompPacket;
    assert.equal(comp.messageId, messageId);
  }
}

/** Next PUBLISH on `topic` (other topics are left in the queue). */
export async function nextPublish(
  client: RawClient,
  topic: string,
  timeoutMs = 5000,
): Promise<mqtt.IPublishPacket> {
  const deadline = Date.now() + timeoutMs;
  const others: Packet[] = []; // PUBLISHes on other topics, put back for whoever asks
  try {
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no PUBLISH on ${topic} within ${timeoutMs} ms`);
      const p = (await client.next('publish', left)) as mqtt.IPublishPacket;
      if (p.topic === topic) return p;
      others.push(p);
    }
  } finally {
    client.received.unshift(...others);
  }
}

/** Acknowledge a QoS 1/2 PUBLISH the broker sent us (PUBACK, or PUBREC+PUBREL→PUBCOMP). */
export async function ack(client: RawClient, p: mqtt.IPublishPacket): Promise<void> {
  if (p.qos === 1) client.send({ cmd: 'puback', messageId: p.messageId });
  else if (p.qos === 2) {
    client.send({ cmd: 'pubrec', messageId: p.messageId });
    await client.next('pubrel');
    client.send({ cmd: 'pubcomp', messageId: p.messageId });
  }
}
