import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Broker } from '../../src/broker.js';
import { BrokerMetrics } from '../../src/metrics.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { Listeners } from '../../src/transports/listeners.js';
import type { ListenerAddress, ListenerSpec } from '../../src/transports/types.js';
import { makeTestPki, type TestPki } from './certs.js';

// Every transport in front of the real engine, with a real client (MQTT.js, protocol 4 and 5):
// a message published over one transport reaches subscribers on all the others.

let pki: TestPki;
let broker: Broker;
let metrics: BrokerMetrics;
let listeners: Listeners;
const urls = new Map<string, ListenerAddress>();

before(async () => {
  pki = makeTestPki();
  const tlsFiles = { cert: pki.certFile, key: pki.keyFile, ca: pki.caFile, requestCert: false };
  const specs: ListenerSpec[] = [
    { name: 'tcp', type: 'tcp', host: '127.0.0.1', port: 0 },
    { name: 'tls', type: 'tls', host: '127.0.0.1', port: 0, tls: tlsFiles },
    { name: 'mtls', type: 'tls', host: '127.0.0.1', port: 0, tls: { ...tlsFiles, requestCert: true } },
    { name: 'ws', type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
    { name: 'wss', type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', tls: tlsFiles },
  ];
  metrics = new BrokerMetrics({ defaultMetrics: false });
  broker = new Broker({ storage: new MemoryStorage(), metrics });
  await broker.start();
  listeners = new Listeners(broker, specs);
  for (const address of await listeners.start()) urls.set(address.name, address);
});

after(async () => {
  listeners.stopAccepting();
  await broker.close();
  await listeners.close({ graceMs: 1000 });
  pki.cleanup();
});

function events(client: MqttClient): EventEmitter {
  return client as unknown as EventEmitter;
}

async function connect(listener: string, options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(urls.get(listener)!.url, {
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ca: pki.ca,
    ...options,
  });
  after(() => client.end(true));
  await once(events(client), 'connect');
  return client;
}

describe('MQTT.js over every transport', () => {
  for (const protocolVersion of [4, 5] as const) {
    test(`protocol ${protocolVersion}: publish on each transport, receive on every transport`, async () => {
      const names = ['tcp', 'tls', 'ws', 'wss'];
      const prefix = `rt/v${protocolVersion}`;
      const clients = new Map<string, MqttClient>();
      for (const name of names) {
        const client = await connect(name, { protocolVersion, clientId: `${name}-v${protocolVersion}` });
        await client.subscribeAsync(`${prefix}/#`, { qos: 1 });
        clients.set(name, client);
      }
      for (const from of names) {
        const arrivals = names.map(
          (to) =>
            new Promise<string>((resolve) => {
              const onMessage = (topic: string, payload: Buffer) => {
                if (topic !== `${prefix}/${from}`) return;
                clients.get(to)!.off('message', onMessage);
                resolve(`${to}:${String(payload)}`);
              };
              clients.get(to)!.on('message', onMessage);
            }),
        );
        await clients.get(from)!.publishAsync(`${prefix}/${from}`, `from ${from}`, { qos: 1 });
        assert.deepEqual(
          await Promise.all(arrivals),
          names.map((to) => `${to}:from ${from}`),
        );
      }
    });
  }

  test('mTLS listener: a device with a client certificate connects and round-trips', async () => {
    const device = await connect('mtls', {
      protocolVersion: 5,
      clientId: 'device-1',
      cert: pki.clientCert,
      key: pki.clientKey,
    });
    await device.subscribeAsync('devices/device-1/cmd', { qos: 1 });
    const got = once(events(device), 'message');
    await device.publishAsync('devices/device-1/cmd', 'reboot', { qos: 1 });
    const [topic, payload] = await got;
    assert.equal(topic, 'devices/device-1/cmd');
    assert.equal(String(payload), 'reboot');
  });

  test('metrics count connections per listener', async () => {
    await connect('ws', { protocolVersion: 5, clientId: 'metrics-ws' });
    const text = await metrics.registry.metrics();
    assert.match(text, /^breakwater_connections\{listener="ws"\} [1-9]\d*$/m);
  });
});
