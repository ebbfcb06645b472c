// Black-box conformance over raw packets: CONNECT / CONNACK / session rules (MQTT 3.1.1 and 5.0).
// Runs against Breakwater, or against BW_TEST_TARGET (e.g. the reference Mosquitto).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ReasonCode } from '@breakwater/broker';
import mqtt from 'mqtt-packet';
import { closedByBroker, endAllRaw, rawConnected, rawSocket, sync } from '../support/raw.js';
import { type Target, target, uniqueId } from '../support/target.js';

let broker: Target;
before(async () => {
  broker = await target();
});
after(async () => {
  await endAllRaw();
  await broker.close();
});

function connectBytes(fields: Partial<mqtt.IConnectPacket>, protocolVersion: 4 | 5 = 4): Buffer {
  return mqtt.generate(
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion,
      clientId: uniqueId('conf'),
      clean: true,
      keepalive: 30,
      ...fields,
    } as mqtt.IConnectPacket,
    { protocolVersion },
  );
}

describe('first packet', () => {
  for (const [name, packet] of [
    [
      'PUBLISH',
      { cmd: 'publish', topic: 'bw-conf/x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false },
    ],
    ['SUBSCRIBE', { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bw-conf/#', qos: 0 }] }],
    ['PINGREQ', { cmd: 'pingreq' }],
  ] as const) {
    test(`[MQTT-3.1.0-1] ${name} before CONNECT: the broker closes the connection without a CONNACK`, async () => {
      const c = await rawSocket(broker);
      c.send(packet as mqtt.Packet);
      await closedByBroker(c);
      assert.deepEqual(
        c.received.filter((p) => p.cmd !== 'disconnect').map((p) => p.cmd),
        [],
      );
    });
  }
});

describe('second CONNECT', () => {
  test('[MQTT-3.1.0-2] v3.1.1: a second CONNECT is a protocol violation and the connection is closed', async () => {
    const { client } = await rawConnected(broker, 4);
    client.send(connectBytes({}));
    await closedByBroker(client);
  });

  test('[MQTT-3.1.0-2] v5: a second CONNECT closes the connection (DISCONNECT, if sent, is 0x82 Protocol Error)', async () => {
    const { client } = await rawConnected(broker, 5);
    client.send(connectBytes({}, 5));
    const d = await closedByBroker(client);
    if (d) assert.equal(d.reasonCode, ReasonCode.ProtocolError);
  });
});

describe('CONNECT validation', () => {
  test('[MQTT-3.1.2-2] unsupported protocol level: CONNACK 0x01 (unacceptable protocol version), then close', async () => {
    const c = await rawSocket(broker);
    const bytes = connectBytes({});
    // Fixed header (2) + protocol name (2 + 4): the protocol level byte is at offset 8.
    assert.equal(bytes[8], 4);
    bytes[8] = 9;
    c.send(bytes);
    await closedByBroker(c);
    const connack = c.received.find((p) => p.cmd === 'connack') as mqtt.IConnackPacket | undefined;
    assert.ok(connack, 'a CONNACK is sent before closing');
    assert.equal(connack.returnCode, 1);
  });

  test('[MQTT-3.1.2-3] reserved CONNECT flag set: the connection is closed without a successful CONNACK', async () => {
    const c = await rawSocket(broker);
    const bytes = connectBytes({});
    assert.equal(bytes[9], 0x02); // connect flags: clean session only
    bytes[9] = 0x03; // + reserved bit 0
    c.send(bytes);
    await closedByBroker(c);
    const connack = c.received.find((p) => p.cmd === 'connack') as mqtt.IConnackPacket | undefined;
    assert.notEqual(connack?.returnCode, 0, 'no successful CONNACK');
  });

  test('[MQTT-3.1.3-5] a 23-character [0-9a-zA-Z] client id is accepted', async () => {
    const clientId = `A${uniqueId('z').replace(/[^0-9a-zA-Z]/g, '')}`.padEnd(23, 'x').slice(0, 23);
    assert.match(clientId, /^[0-9a-zA-Z]{23}$/);
    const { client } = await rawConnected(broker, 4, { clientId });
    await sync(client);
  });

  test('[MQTT-3.1.3-6] v3.1.1: zero-length client id with CleanSession=1 is accepted', async () => {
    const { client } = await rawConnected(broker, 4, { clientId: '', clean: true });
    await sync(client);
  });

  test('[MQTT-3.1.3-8] v3.1.1: zero-length client id with CleanSession=0 → CONNACK 0x02, then close', async () => {
    const c = await rawSocket(broker, 4);
    // mqtt-packet refuses to generate this CONNECT, so it is written by hand:
    // fixed header, "MQTT", level 4, flags 0x00 (CleanSession=0), keepalive 30, client id "".
    c.send(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 30, 0, 0]));
    const connack = (await c.next('connack')) as mqtt.IConnackPacket;
    assert.equal(connack.returnCode, 2);
    await closedByBroker(c);
  });

  test('[MQTT-3.1.3-7] v5: zero-length client id → CONNACK carries an Assigned Client Identifier', async () => {
    const { connack } = await rawConnected(broker, 5, { clientId: '' });
    const assigned = connack.properties?.assignedClientIdentifier;
    assert.equal(typeof assigned, 'string');
    assert.ok((assigned as string).length > 0);
    const { connack: other } = await rawConnected(broker, 5, { clientId: '' });
    assert.notEqual(other.properties?.assignedClientIdentifier, assigned, 'assigned ids are unique');
  });

  test('[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP', async () => {
    const { client } = await rawConnected(broker, 4);
    client.send({ cmd: 'pingreq' });
    await client.next('pingresp');
  });
});

describe('client takeover and session present', () => {
  test('[MQTT-3.1.4-3] v3.1.1: a CONNECT with a connected client id closes the existing connection', async () => {
    const clientId = uniqueId('takeover');
    const { client: first } = await rawConnected(broker, 4, { clientId });
    const { client: second } = await rawConnected(broker, 4, { clientId });
    await closedByBroker(first);
    await sync(second);
  });

  test('[MQTT-3.1.4-3] v5: the existing connection is closed; its DISCONNECT carries 0x8E (session taken over)', async () => {
    const clientId = uniqueId('takeover5');
    const { client: first } = await rawConnected(broker, 5, { clientId });
    const { client: second } = await rawConnected(broker, 5, { clientId });
    const d = await closedByBroker(first);
    // Mosquitto 2.0.11 closes without a DISCONNECT; Breakwater must send one (issue 2,
    // "connection hygiene"), so its absence only fails against Breakwater.
    if (broker.kind === 'breakwater') assert.ok(d, 'Breakwater tells a v5 client why (issue 2)');
    if (d) assert.equal(d.reasonCode, ReasonCode.SessionTakenOver);
    await sync(second);
  });

  test('[MQTT-3.2.2-2] [MQTT-3.2.2-3] v3.1.1: session present is 0 for a clean session, 1 when a stored session resumes', async () => {
    const clientId = uniqueId('sp4');
    const a = await rawConnected(broker, 4, { clientId, clean: true });
    assert.equal(a.connack.sessionPresent, false);
    await a.client.end();
    const b = await rawConnected(broker, 4, { clientId, clean: false });
    assert.equal(b.connack.sessionPresent, false, 'no session existed (the clean one was discarded)');
    b.client.send({ cmd: 'disconnect' });
    await closedByBroker(b.client);
    const c = await rawConnected(broker, 4, { clientId, clean: false });
    assert.equal(c.connack.sessionPresent, true);
    await c.client.end();
    const d = await rawConnected(broker, 4, { clientId, clean: true });
    assert.equal(d.connack.sessionPresent, false, '[MQTT-3.2.2-1] clean session always reports 0');
  });

  test('[MQTT-3.2.2-2] [MQTT-3.2.2-3] v5: Clean Start=0 with Session Expiry resumes the session (session present 1)', async () => {
    const clientId = uniqueId('sp5');
    const props = { sessionExpiryInterval: 60 };
    const a = await rawConnected(broker, 5, { clientId, clean: true, properties: props });
    assert.equal(a.connack.sessionPresent, false);
    a.client.send({ cmd: 'disconnect', reasonCode: 0 });
    await closedByBroker(a.client);
    const b = await rawConnected(broker, 5, { clientId, clean: false, properties: props });
    assert.equal(b.connack.sessionPresent, true);
    b.client.send({ cmd: 'disconnect', reasonCode: 0 });
    await closedByBroker(b.client);
    const c = await rawConnected(broker, 5, {
      clientId,
      clean: true,
      properties: { sessionExpiryInterval: 0 },
    });
    assert.equal(c.connack.sessionPresent, false, 'Clean Start=1 discards the session');
  });

  test('v5: Session Expiry Interval 0 ends the session at disconnect (session present 0 on return)', async () => {
    const clientId = uniqueId('sp5x');
    const a = await rawConnected(broker, 5, {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 0 },
    });
    a.client.send({ cmd: 'disconnect', reasonCode: 0 });
    await closedByBroker(a.client);
    const b = await rawConnected(broker, 5, {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 0 },
    });
    assert.equal(b.connack.sessionPresent, false);
  });
});
