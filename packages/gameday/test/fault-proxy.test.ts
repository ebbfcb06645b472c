import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startBroker, type TestBroker } from '@breakwater/testkit';
import { FaultProxy, Fleet } from '../src/index.js';

const DEADLINE = 60_000;

/** An echo server that records every connection it accepted. */
async function echoServer(): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

/** Sends `text` and resolves with the time until it came back whole. */
async function roundTrip(s: net.Socket, text: string): Promise<number> {
  const started = performance.now();
  let got = '';
  s.write(text);
  return new Promise((resolve) => {
    const onData = (b: Buffer) => {
      got += b.toString();
      if (got.length >= text.length) {
        s.off('data', onData);
        resolve(performance.now() - started);
      }
    };
    s.on('data', onData);
  });
}

/** Resolves on 'close' (events.once would reject on the 'error' a reset brings first). */
function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => s.once('close', () => resolve()));
}

async function until(what: string, check: () => boolean, timeoutMs = DEADLINE): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('FaultProxy', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let proxy: FaultProxy;
  let port: number;
  let apiPort: number;

  before(async () => {
    echo = await echoServer();
    proxy = new FaultProxy({ target: { host: '127.0.0.1', port: echo.port }, api: { port: 0 } });
    const started = await proxy.start();
    port = started.port;
    apiPort = started.apiPort!;
  });

  after(async () => {
    await proxy.close();
    await echo.close();
  });

  it('forwards both ways and counts bytes', async () => {
    const s = await connect(port);
    await roundTrip(s, 'hello');
    const st = proxy.stats();
    assert.equal(st.bytesUp, 5);
    assert.equal(st.bytesDown, 5);
    assert.equal(st.open, 1);
    s.destroy();
    await until('connection gone', () => proxy.stats().open === 0);
  });

  it('applies latency in each direction (a round trip takes at least twice of it)', async () => {
    proxy.set({ latencyMs: 150 });
    const s = await connect(port);
    // A lower bound only: the delay is a floor, never a ceiling, on a loaded machine.
    const rtt = await roundTrip(s, 'ping');
    assert.ok(rtt >= 280, `round trip ${rtt} ms with 150 ms latency each way`);
    proxy.set({});
    s.destroy();
  });

  it('keeps byte order under jitter', async () => {
    proxy.set({ latencyMs: 5, jitterMs: 40 });
    const s = await connect(port);
    let got = '';
    s.on('data', (b: Buffer) => {
      got += b.toString();
    });
    const expected = Array.from({ length: 50 }, (_, i) => `<${i}>`).join('');
    for (let i = 0; i < 50; i++) {
      s.write(`<${i}>`);
      await new Promise((r) => setImmediate(r));
    }
    await until('all bytes back', () => got.length >= expected.length);
    assert.equal(got, expected);
    proxy.set({});
    s.destroy();
  });

  it('black hole: keeps the connection, forwards nothing', async () => {
    const s = await connect(port);
    proxy.set({ blackhole: true });
    const before = proxy.stats().bytesUp;
    s.write('lost');
    // Round-trip something else through the API to give the proxy time to (not) forward it.
    await fetch(`http://127.0.0.1:${apiPort}/faults`);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(proxy.stats().bytesUp, before);
    assert.equal(s.destroyed, false);
    proxy.set({});
    assert.equal(await roundTrip(s, 'back').then(() => 'ok'), 'ok');
    s.destroy();
  });

  it('resetAll() resets every open connection; new ones still work', async () => {
    const a = await connect(port);
    const b = await connect(port);
    await until('two open', () => proxy.stats().open === 2);
    const errors: string[] = [];
    for (const s of [a, b]) s.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? ''));
    const bothClosed = Promise.all([closed(a), closed(b)]);
    proxy.resetAll();
    await bothClosed;
    assert.deepEqual(errors, ['ECONNRESET', 'ECONNRESET']);
    assert.equal(proxy.stats().open, 0);
    await until('upstream sockets closed', () => echo.sockets.size === 0);
    const c = await connect(port);
    await roundTrip(c, 'again');
    c.destroy();
  });

  it('resetAll() as a killed client is reaped releases every socket (none left half-closed)', async () => {
    // A test teardown kills a broker, then closes the proxy in the same turn the kernel's FINs
    // arrive. The proxy passes each FIN on with end(); a reset before that shutdown completed
    // failed (EINVAL) and left the upstream handle open for good, so the process spun at exit.
    const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const baseline = tcpHandles();
    const n = 20;
    for (let round = 0; round < 3; round++) {
      const client = spawn(
        process.execPath,
        [
          '-e',
          `let up = 0; for (let i = 0; i < ${n}; i++) require('net').connect(${port}, '127.0.0.1', () => ++up === ${n} && console.log('up')); setInterval(() => {}, 1000);`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await once(client.stdout!, 'data');
      await until(`${n} open`, () => proxy.stats().open === n);
      client.kill('SIGKILL');
      await once(client, 'exit');
      proxy.resetAll();
      await until('every socket released', () => tcpHandles() <= baseline, 10_000);
    }
    await until('upstream sockets closed', () => echo.sockets.size === 0);
  });

  it('cut() drops everything and refuses new connections until restore()', async () => {
    const a = await connect(port);
    await until('one open', () => proxy.stats().open === 1);
    const aClosed = closed(a);
    proxy.cut();
    await aClosed;
    const refused = net.connect({ host: '127.0.0.1', port });
    refused.on('error', () => {});
    const data: Buffer[] = [];
    refused.on('data', (b: Buffer) => data.push(b));
    await closed(refused);
    assert.equal(data.length, 0);
    assert.equal(proxy.stats().open, 0);
    proxy.restore();
    const b = await connect(port);
    await roundTrip(b, 'restored');
    b.destroy();
  });

  it('is driven over HTTP', async () => {
    const put = await fetch(`http://127.0.0.1:${apiPort}/faults`, {
      method: 'PUT',
      body: JSON.stringify({ latencyMs: 10, refuse: false }),
    });
    assert.equal(put.status, 200);
    assert.deepEqual(proxy.faults, { latencyMs: 10, refuse: false });
    const bad = await fetch(`http://127.0.0.1:${apiPort}/faults`, {
      method: 'PUT',
      body: JSON.stringify({ latencyMs: -1 }),
    });
    assert.equal(bad.status, 400);
    const unknown = await fetch(`http://127.0.0.1:${apiPort}/faults`, {
      method: 'PUT',
      body: JSON.stringify({ lag: 1 }),
    });
    assert.equal(unknown.status, 400);
    const cut = await fetch(`http://127.0.0.1:${apiPort}/cut`, { method: 'POST' });
    assert.equal(((await cut.json()) as { cut: boolean }).cut, true);
    assert.equal(proxy.isCut, true);
    await fetch(`http://127.0.0.1:${apiPort}/restore`, { method: 'POST' });
    assert.equal(proxy.isCut, false);
    proxy.set({});
  });
});

describe('FaultProxy between a fleet and a broker', () => {
  let broker: TestBroker;

  before(async () => {
    broker = await startBroker();
  });

  after(async () => {
    await broker.close();
  });

  it('a cut drops the fleet; after restore it reconnects', async () => {
    const proxy = new FaultProxy({ target: { host: '127.0.0.1', port: broker.port } });
    const { port } = await proxy.start();
    const fleet = new Fleet({ target: { host: '127.0.0.1', port }, devices: 50, timeScale: 0.01 });
    try {
      await fleet.start();
      await fleet.waitFor((s) => s.connected === 50, DEADLINE);
      proxy.cut();
      const down = await fleet.waitFor((s) => s.connected === 0, DEADLINE);
      assert.equal(down.disconnectsByServer.closed, 50);
      await until('broker lost them', () => broker.broker.connectedClients === 0);
      // While cut, attempts fail as network errors.
      await fleet.waitFor((s) => s.networkErrors > 0, DEADLINE);
      proxy.restore();
      const up = await fleet.waitFor((s) => s.connected === 50, DEADLINE);
      assert.ok(up.connacksOk >= 100);
      await until('broker has them again', () => broker.broker.connectedClients === 50);
    } finally {
      await fleet.stop();
      await proxy.close();
    }
  });
});
