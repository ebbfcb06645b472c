import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import type { ByteStream } from '../../src/byte-stream.js';
import type { ConnectionInfo } from '../../src/options.js';
import { createTcpServer } from '../../src/transports/tcp.js';
import { loadTcpBinding } from '../../src/transports/tcp-binding.js';
import { TcpHandleServer } from '../../src/transports/tcp-handle-server.js';
import type { TcpHandleStream } from '../../src/transports/tcp-handle-stream.js';

/**
 * The plain-TCP engine on Node's internal TCP handle, against real node:net clients: the part of
 * a net.Socket's behaviour the broker relies on (connection.ts), byte for byte.
 */

interface Accepted {
  stream: TcpHandleStream;
  info: ConnectionInfo;
}

async function serve(): Promise<{
  server: TcpHandleServer;
  port: number;
  accepted: Accepted[];
  next(): Promise<Accepted>;
}> {
  const accepted: Accepted[] = [];
  const waiting: ((a: Accepted) => void)[] = [];
  const server = createTcpServer(
    {
      handle(stream: ByteStream, info: ConnectionInfo) {
        const a = { stream: stream as TcpHandleStream, info };
        accepted.push(a);
        waiting.shift()?.(a);
      },
    },
    'unit',
    'handle',
  );
  assert.ok(server instanceof TcpHandleServer, 'this Node.js has the internal TCP binding');
  server.listen({ port: 0, host: '127.0.0.1' });
  await once(server, 'listening');
  // Streams first: close() waits for every accepted connection to close.
  after(() => {
    for (const a of accepted) a.stream.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = server.address()!.port;
  let taken = 0;
  return {
    server,
    port,
    accepted,
    next: () =>
      new Promise((resolve) => {
        const a = accepted[taken];
        if (a !== undefined) {
          taken++;
          resolve(a);
        } else
          waiting.push((x) => {
            taken++;
            resolve(x);
          });
      }),
  };
}

async function client(port: number): Promise<net.Socket> {
  const c = net.connect(port, '127.0.0.1');
  await once(c, 'connect');
  after(() => {
    c.destroy();
  });
  return c;
}

function collect(socket: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      n += d.length;
      if (n >= bytes) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('TcpHandleStream (plain-TCP engine on the internal TCP handle)', () => {
  test('the binding loads on this Node.js', () => {
    assert.notEqual(loadTcpBinding(), null);
  });

  test('bytes flow both ways, and the stream is its own ConnectionInfo', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream, info } = await next();
    assert.equal(info, stream);
    assert.equal(info.listener, 'unit');
    assert.equal(info.transport, 'tcp');
    assert.equal(info.remoteAddress, c.localAddress);
    assert.equal(info.remotePort, c.localPort);
    const received: Buffer[] = [];
    stream.on('data', (d: Buffer) => received.push(d));
    c.write('hello ');
    c.write('broker');
    const reply = collect(c, 5);
    stream.write(Buffer.from('hi!!!'));
    assert.equal((await reply).toString(), 'hi!!!');
    while (Buffer.concat(received).length < 12) await new Promise((r) => setImmediate(r));
    assert.equal(Buffer.concat(received).toString(), 'hello broker');
  });

  test('corked writes leave together, in order, when uncorked', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream } = await next();
    const parts = [pattern(100, 1), pattern(3000, 2), pattern(7, 3)];
    const expected = Buffer.concat(parts);
    const got = collect(c, expected.length);
    stream.cork();
    for (const p of parts) assert.equal(stream.write(p), true);
    assert.equal(stream.writableLength, expected.length);
    stream.uncork();
    assert.deepEqual(await got, expected);
  });

  test('a reader that stops: write() returns false, writableLength grows, drain follows, nothing is lost', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    c.pause();
    const { stream } = await next();
    let drains = 0;
    stream.on('drain', () => drains++);
    const chunk = 256 * 1024;
    const chunks = 64; // 16 MiB: more than the kernel buffers of both sides hold
    const all: Buffer[] = [];
    let refused = false;
    for (let i = 0; i < chunks; i++) {
      const p = pattern(chunk, i);
      all.push(p);
      if (!stream.write(p)) refused = true;
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(refused, true);
    assert.ok(stream.writableLength > 1024 * 1024, `writableLength ${stream.writableLength}`);
    const got = collect(c, chunk * chunks);
    c.resume();
    assert.deepEqual(await got, Buffer.concat(all));
    while (drains === 0) await new Promise((r) => setImmediate(r));
    assert.equal(stream.writableLength, 0);
  });

  test('pause() stops data events until resume(); bytes sent meanwhile arrive after', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream } = await next();
    const received: Buffer[] = [];
    stream.on('data', (d: Buffer) => received.push(d));
    stream.pause();
    c.write('while paused');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(received.length, 0);
    stream.resume();
    while (Buffer.concat(received).length < 12) await new Promise((r) => setImmediate(r));
    assert.equal(Buffer.concat(received).toString(), 'while paused');
  });

  test('end() sends what was written, then FIN; finish, then close after destroy()', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream } = await next();
    const events: string[] = [];
    stream.on('finish', () => {
      events.push('finish');
      stream.destroy();
    });
    stream.on('close', () => events.push('close'));
    const body = pattern(200_000, 9);
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    const ended = once(c, 'end');
    stream.write(body);
    stream.end();
    assert.equal(stream.writable, false);
    assert.equal(stream.write(Buffer.from('late')), false);
    await ended;
    assert.deepEqual(Buffer.concat(chunks), body);
    while (!events.includes('close')) await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ['finish', 'close']);
    assert.equal(stream.destroyed, true);
  });

  test("the peer's FIN emits end, ends this side too (no half-open connections), then close", async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream } = await next();
    const events: string[] = [];
    stream.on('data', () => {});
    stream.on('end', () => events.push('end'));
    stream.on('finish', () => {
      events.push('finish');
      stream.destroy();
    });
    stream.on('close', () => events.push('close'));
    const clientEnded = once(c, 'end');
    c.end();
    await clientEnded;
    while (!events.includes('close')) await new Promise((r) => setImmediate(r));
    assert.deepEqual(events, ['end', 'finish', 'close']);
    assert.equal(stream.readableEnded, true);
  });

  test('a reset by the peer is an error (ECONNRESET), then close, once each', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream } = await next();
    const errors: NodeJS.ErrnoException[] = [];
    let closes = 0;
    stream.on('data', () => {});
    stream.on('error', (err: NodeJS.ErrnoException) => errors.push(err));
    stream.on('close', () => closes++);
    c.resetAndDestroy();
    while (closes === 0) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(closes, 1);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'ECONNRESET');
    assert.equal(stream.destroyed, true);
  });

  test('destroy() closes the connection at once: the peer sees it close, writes after it are refused', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream } = await next();
    let closes = 0;
    stream.on('close', () => closes++);
    const peerClosed = once(c, 'close');
    c.on('error', () => {});
    stream.destroy();
    stream.destroy();
    assert.equal(stream.write(Buffer.from('x')), false);
    await peerClosed;
    while (closes === 0) await new Promise((r) => setImmediate(r));
    assert.equal(closes, 1);
    assert.equal(stream.remoteAddress, undefined);
  });

  test('listeners: once("data") is refused; off() removes one of several', async () => {
    const { next, port } = await serve();
    const c = await client(port);
    const { stream } = await next();
    assert.throws(() => stream.once('data', () => {}), TypeError);
    assert.throws(() => stream.on('readable', () => {}), TypeError);
    const calls: string[] = [];
    const a = () => calls.push('a');
    const b = () => calls.push('b');
    stream.on('close', a);
    stream.on('close', b);
    stream.off('close', a);
    const peerClosed = once(c, 'close');
    stream.destroy();
    await peerClosed;
    while (calls.length === 0) await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, ['b']);
  });
});

describe('TcpHandleServer', () => {
  test('a port in use is an EADDRINUSE error event, as net.Server has', async () => {
    const taken = net.createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    after(() => taken.close());
    const port = (taken.address() as net.AddressInfo).port;
    const server = createTcpServer({ handle() {} }, 'unit', 'handle');
    server.listen({ port, host: '127.0.0.1' });
    const [err] = (await once(server, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(server.listening, false);
  });

  test('maxConnections: sockets beyond it are closed at accept', async () => {
    const { server, port, accepted } = await serve();
    server.maxConnections = 1;
    await client(port);
    while (accepted.length < 1) await new Promise((r) => setImmediate(r));
    const second = net.connect(port, '127.0.0.1');
    second.on('error', () => {});
    await once(second, 'close');
    assert.equal(accepted.length, 1);
  });

  test('close(): no new connections; the callback waits for the open ones to close', async () => {
    const { server, port, next } = await serve();
    const c = await client(port);
    const { stream } = await next();
    let closed = false;
    server.close(() => {
      closed = true;
    });
    const refused = net.connect(port, '127.0.0.1');
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed, false, 'an accepted connection is still open');
    c.on('error', () => {});
    stream.destroy();
    while (!closed) await new Promise((r) => setImmediate(r));
    const [again] = await new Promise<[Error | undefined]>((resolve) => server.close((e) => resolve([e])));
    assert.equal((again as NodeJS.ErrnoException | undefined)?.code, 'ERR_SERVER_NOT_RUNNING');
  });

  test("engine 'net' serves with node:net", () => {
    const server = createTcpServer({ handle() {} }, 'unit', 'net');
    assert.ok(server instanceof net.Server);
  });
});
