import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import { WebSocket } from 'ws';
import type { ByteStream } from '../../src/byte-stream.js';
import { systemClock } from '../../src/clock.js';
import { BreakwaterError } from '../../src/errors.js';
import { resolveAdmissionConfig } from '../../src/guard/admission/config.js';
import { AdmissionGate } from '../../src/guard/admission/gate.js';
import { AdmissionMetrics } from '../../src/guard/admission/metrics.js';
import type { ConnectionInfo } from '../../src/options.js';
import { Listeners, PortInUseError } from '../../src/transports/listeners.js';
import type { ListenerSpec, StreamHandler } from '../../src/transports/types.js';
import { makeTestPki, type TestPki } from './certs.js';

/**
 * The transport contract, independent of the MQTT engine: every listener type hands the peer's
 * bytes to `handle()` as a duplex stream, both directions, with the right ConnectionInfo. An echo
 * handler stands in for the broker (the MQTT round trips are in mqtt-roundtrip.test.ts).
 */
class EchoHandler implements StreamHandler {
  readonly infos: ConnectionInfo[] = [];
  readonly streams: ByteStream[] = [];
  echo = true;
  handle(stream: ByteStream, info: ConnectionInfo): void {
    this.infos.push(info);
    this.streams.push(stream);
    stream.on('error', () => {});
    // Only the ByteStream surface the broker uses (a plain-TCP stream is not a Node Duplex).
    stream.on('data', (chunk: Buffer) => this.echo && stream.write(chunk));
    stream.on('end', () => stream.end());
  }
}

let pki: TestPki;
before(() => {
  pki = makeTestPki();
});
after(() => pki.cleanup());

function spec(name: string, type: ListenerSpec['type'], extra: Partial<ListenerSpec> = {}): ListenerSpec {
  const secure = type === 'tls' || type === 'wss';
  return {
    name,
    type,
    host: '127.0.0.1',
    port: 0,
    ...(type === 'ws' || type === 'wss' ? { path: '/mqtt' } : {}),
    ...(secure ? { tls: { cert: pki.certFile, key: pki.keyFile, ca: pki.caFile, requestCert: false } } : {}),
    ...extra,
  };
}

async function startListeners(specs: ListenerSpec[], handler: StreamHandler = new EchoHandler()) {
  const listeners = new Listeners(handler, specs);
  after(() => listeners.close({ graceMs: 0 }));
  const addresses = await listeners.start();
  return { listeners, addresses };
}

/** Writes `payload` and collects that many bytes back (without consuming the socket's end). */
function echoOver(socket: Duplex, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length < payload.length) return;
      socket.off('data', onData);
      socket.off('error', reject);
      resolve(Buffer.concat(chunks));
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(payload);
  });
}

function openWebSocket(
  url: string,
  options: ConstructorParameters<typeof WebSocket>[2] = {},
): Promise<WebSocket> {
  const ws = new WebSocket(url, 'mqtt', options);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

describe('Listeners', () => {
  test('tcp: bytes go both ways, ConnectionInfo names listener, transport and peer', async () => {
    const handler = new EchoHandler();
    const { addresses } = await startListeners([spec('plain', 'tcp')], handler);
    const [address] = addresses;
    assert.ok(address);
    assert.notEqual(address.port, 0, 'port 0 resolves to the real port');
    assert.equal(address.url, `mqtt://127.0.0.1:${address.port}`);
    const socket = net.connect(address.port, '127.0.0.1');
    after(() => socket.destroy());
    await once(socket, 'connect');
    const echoed = await echoOver(socket, Buffer.from([0x10, 0x00, 0xc0, 0x00]));
    assert.deepEqual(echoed, Buffer.from([0x10, 0x00, 0xc0, 0x00]));
    // TCP info reads the peer lazily (getters): compare the fields, not the object's own keys.
    const info = handler.infos[0];
    assert.ok(info);
    const { listener, transport, remoteAddress, remotePort } = info;
    assert.deepEqual(
      { listener, transport, remoteAddress, remotePort },
      {
        listener: 'plain',
        transport: 'tcp',
        remoteAddress: '127.0.0.1',
        remotePort: socket.localPort,
      },
    );
  });

  test('tls: handshake against the configured cert, then bytes both ways', async () => {
    const handler = new EchoHandler();
    const { addresses } = await startListeners([spec('secure', 'tls')], handler);
    const address = addresses[0]!;
    assert.equal(address.url, `mqtts://127.0.0.1:${address.port}`);
    const socket = tls.connect({ host: '127.0.0.1', port: address.port, ca: pki.ca });
    after(() => socket.destroy());
    await once(socket, 'secureConnect');
    assert.equal(socket.authorized, true, 'client verified the server cert against the CA');
    const echoed = await echoOver(socket, Buffer.from('hello over tls'));
    assert.equal(echoed.toString(), 'hello over tls');
    assert.equal(handler.infos[0]?.transport, 'tls');
    assert.equal(handler.infos[0]?.peerCertificate, undefined, 'no client cert requested');
  });

  test('tls with requestCert (mTLS): a client without a cert is refused, one with a cert is identified', async () => {
    const handler = new EchoHandler();
    const mtls = spec('mtls', 'tls');
    mtls.tls = { ...mtls.tls!, requestCert: true };
    const { addresses } = await startListeners([mtls], handler);
    const port = addresses[0]!.port;

    const anonymous = tls.connect({ host: '127.0.0.1', port, ca: pki.ca });
    after(() => anonymous.destroy());
    // TLS 1.3: the server's refusal arrives after the client's side of the handshake completes.
    const [err] = await once(anonymous, 'error').catch((e: unknown) => [e]);
    assert.match(String((err as Error).message), /certificate|alert|handshake/i);
    assert.equal(handler.infos.length, 0, 'the refused client never reached the handler');

    const device = tls.connect({
      host: '127.0.0.1',
      port,
      ca: pki.ca,
      cert: pki.clientCert,
      key: pki.clientKey,
    });
    after(() => device.destroy());
    await once(device, 'secureConnect');
    assert.equal((await echoOver(device, Buffer.from('x'))).toString(), 'x');
    const cert = handler.infos[0]?.peerCertificate as tls.PeerCertificate | undefined;
    assert.equal(cert?.subject.CN, 'device-1');
  });

  test('ws: subprotocol mqtt on /mqtt, binary frames both ways', async () => {
    const handler = new EchoHandler();
    const { addresses } = await startListeners([spec('web', 'ws')], handler);
    const address = addresses[0]!;
    assert.equal(address.url, `ws://127.0.0.1:${address.port}/mqtt`);
    const ws = await openWebSocket(address.url);
    after(() => ws.terminate());
    // [MQTT-6.0.0-3] the server selects the "mqtt" subprotocol.
    assert.equal(ws.protocol, 'mqtt');
    ws.send(Buffer.from([0xc0, 0x00]));
    const [data, isBinary] = await once(ws, 'message');
    assert.equal(isBinary, true);
    assert.deepEqual(data, Buffer.from([0xc0, 0x00]));
    assert.equal(handler.infos[0]?.transport, 'ws');
    assert.equal(handler.infos[0]?.listener, 'web');
    assert.equal(handler.infos[0]?.remoteAddress, '127.0.0.1');
  });

  test('ws: a corked batch of writes leaves as one binary frame', async () => {
    const handler = new EchoHandler();
    const { addresses } = await startListeners([spec('web', 'ws')], handler);
    const ws = await openWebSocket(addresses[0]!.url);
    after(() => ws.terminate());
    ws.send(Buffer.from([0xc0, 0x00]));
    await once(ws, 'message');
    const stream = handler.streams[0]!;
    handler.echo = false;
    stream.cork();
    stream.write(Buffer.from([0xd0, 0x00]));
    stream.write(Buffer.from([0xd0, 0x00]));
    stream.write(Buffer.from([0xd0, 0x00]));
    process.nextTick(() => stream.uncork());
    const [data] = await once(ws, 'message');
    assert.deepEqual(data, Buffer.from([0xd0, 0x00, 0xd0, 0x00, 0xd0, 0x00]));
  });

  test('[MQTT-6.0.0-1] ws: a text frame closes the connection', async () => {
    const { addresses } = await startListeners([spec('web', 'ws')]);
    const ws = await openWebSocket(addresses[0]!.url);
    after(() => ws.terminate());
    ws.send('CONNECT as text');
    const [code] = await once(ws, 'close');
    assert.equal(code, 1003);
  });

  test('ws: another path is 404, a plain HTTP request is 426', async () => {
    const { addresses } = await startListeners([spec('web', 'ws')]);
    const port = addresses[0]!.port;
    await assert.rejects(openWebSocket(`ws://127.0.0.1:${port}/other`), /HTTP 404/);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(`http://127.0.0.1:${port}/mqtt`, resolve).once('error', reject);
    });
    res.resume();
    assert.equal(res.statusCode, 426);
  });

  test('wss: TLS then WebSocket, bytes both ways', async () => {
    const handler = new EchoHandler();
    const { addresses } = await startListeners([spec('websecure', 'wss', { path: '/mqtt' })], handler);
    const address = addresses[0]!;
    assert.equal(address.url, `wss://127.0.0.1:${address.port}/mqtt`);
    const ws = await openWebSocket(address.url, { ca: pki.ca });
    after(() => ws.terminate());
    ws.send(Buffer.from('over wss'));
    const [data] = await once(ws, 'message');
    assert.equal(String(data), 'over wss');
    assert.equal(handler.infos[0]?.transport, 'wss');
  });

  test('the accept queue is 4096 by default (capped by somaxconn) and listeners[].backlog when set', async (t) => {
    // ss reports a listening socket's accept-queue capacity as its Send-Q (Linux only).
    const listenQueue = (port: number): number | null => {
      const r = spawnSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
      if (r.status !== 0) return null;
      const fields = r.stdout.trim().split(/\s+/);
      return fields.length >= 3 ? Number(fields[2]) : null;
    };
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    const { addresses } = await startListeners([spec('dflt', 'tcp'), spec('small', 'tcp', { backlog: 64 })]);
    const dflt = listenQueue(addresses[0]!.port);
    if (dflt === null) return t.skip('ss(8) is not available');
    assert.equal(dflt, Math.min(4096, somaxconn));
    assert.equal(listenQueue(addresses[1]!.port), 64);
  });

  test('a taken port is BW_ERR_PORT_IN_USE naming the port and what to change; nothing stays bound', async () => {
    const squatter = net.createServer();
    squatter.listen(0, '127.0.0.1');
    await once(squatter, 'listening');
    after(() => squatter.close());
    const taken = (squatter.address() as net.AddressInfo).port;

    const first = spec('first', 'tcp');
    const listeners = new Listeners(new EchoHandler(), [
      first,
      spec('second', 'tcp', { port: taken, portSource: '--mqtt-port' }),
    ]);
    after(() => listeners.close({ graceMs: 0 }));
    const err = await listeners.start().then(
      () => assert.fail('start() must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof PortInUseError);
    assert.ok(err instanceof BreakwaterError);
    assert.equal(err.code, 'BW_ERR_PORT_IN_USE');
    assert.equal(err.port, taken);
    assert.equal(err.portSource, '--mqtt-port');
    assert.match(err.message, new RegExp(`port is already in use: ${taken} .*change it with --mqtt-port`));
    assert.doesNotMatch(err.message, /\n/, 'one line');
    assert.equal(listeners.accepting, false);
    assert.deepEqual(listeners.addresses.length, 1, 'the first listener had bound before the failure');
    // …and start() closed it again: nothing accepts on its port any more.
    const probe = net.connect(listeners.addresses[0]!.port, '127.0.0.1');
    const [probeErr] = await once(probe, 'error');
    assert.equal((probeErr as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  });

  test('stopAccepting refuses new sockets, keeps open ones; close() ends the rest', async () => {
    const handler = new EchoHandler();
    const { listeners, addresses } = await startListeners([spec('plain', 'tcp'), spec('web', 'ws')], handler);
    const [tcpAddress, wsAddress] = addresses;
    const socket = net.connect(tcpAddress!.port, '127.0.0.1');
    after(() => socket.destroy());
    await once(socket, 'connect');
    const ws = await openWebSocket(wsAddress!.url);
    after(() => ws.terminate());
    assert.equal(listeners.accepting, true);

    listeners.stopAccepting();
    assert.equal(listeners.accepting, false);
    const late = net.connect(tcpAddress!.port, '127.0.0.1');
    const [lateErr] = await once(late, 'error');
    assert.equal((lateErr as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.equal((await echoOver(socket, Buffer.from('still here'))).toString(), 'still here');

    const closedTcp = once(socket, 'close');
    const closedWs = once(ws, 'close');
    await listeners.close({ graceMs: 0 });
    await closedTcp;
    await closedWs;
  });

  test('maxConnections refuses sockets past the cap at accept', async () => {
    const handler = new EchoHandler();
    const { addresses } = await startListeners([spec('capped', 'tcp', { maxConnections: 1 })], handler);
    const port = addresses[0]!.port;
    const a = net.connect(port, '127.0.0.1');
    after(() => a.destroy());
    await once(a, 'connect');
    assert.equal((await echoOver(a, Buffer.from('a'))).toString(), 'a');
    const b = net.connect(port, '127.0.0.1');
    after(() => b.destroy());
    // The kernel completes the TCP handshake; Node then closes the socket over the cap at once.
    await once(b, 'close');
    assert.equal(handler.infos.length, 1, 'the second socket never reached the handler');
  });

  test('with admission, maxConnections is an admission cap: refused at accept and counted', {
    timeout: 20_000,
  }, async () => {
    const handler = new EchoHandler();
    const registry = new Registry();
    const metrics = new AdmissionMetrics(registry);
    // acceptAnswerMs 0: destroyed at accept (a broker would otherwise wait for CONNECT to answer it).
    const config = resolveAdmissionConfig({ tarpit: { acceptAnswerMs: 0 } });
    const admission = new AdmissionGate(config, { clock: systemClock, metrics });
    const listeners = new Listeners(handler, [spec('capped', 'tcp', { maxConnections: 1 })], { admission });
    after(() => listeners.close({ graceMs: 0 }));
    const port = (await listeners.start())[0]!.port;
    const a = net.connect(port, '127.0.0.1');
    after(() => a.destroy());
    await once(a, 'connect');
    assert.equal((await echoOver(a, Buffer.from('a'))).toString(), 'a');
    const b = net.connect(port, '127.0.0.1');
    after(() => b.destroy());
    await once(b, 'close');
    assert.equal(handler.infos.length, 1, 'the second socket never reached the handler');
    const refused = (await metrics.refused.get()).values.find(
      (v) => v.labels.listener === 'capped' && v.labels.reason === 'max_connections',
    );
    assert.equal(refused?.value, 1, 'the refusal is counted by reason');
  });
});
