// Child of bench/scenarios/socket-floor.ts: a TCP server that accepts and holds idle connections
// and does nothing else, in one of two ways. Plain JavaScript so that no loader (tsx) adds to the
// memory being measured.
//   net  — node:net's server: one net.Socket (a Duplex stream around the TCP handle) per connection
//   tcp  — Node's internal TCP handle (process.binding('tcp_wrap')): the handle alone, no stream
import { readFileSync } from 'node:fs';
import net from 'node:net';

const mode = process.argv[2];
const held = [];
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);

if (mode === 'net') {
  const server = net.createServer((socket) => {
    held.push(socket);
    socket.on('data', () => {});
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', 4096, () => process.send({ port: server.address().port }));
} else if (mode === 'tcp') {
  const { TCP, constants } = process.binding('tcp_wrap');
  const server = new TCP(constants.SERVER);
  server.bind('127.0.0.1', 0);
  server.onconnection = (err, handle) => {
    if (err) return;
    held.push(handle);
    handle.onread = () => {};
    handle.readStart();
  };
  server.listen(4096);
  const addr = {};
  server.getsockname(addr);
  process.send({ port: addr.port });
} else {
  throw new Error(`unknown mode ${mode}`);
}

process.on('message', (m) => {
  if (m !== 'measure') return;
  globalThis.gc();
  setTimeout(() => {
    const mem = process.memoryUsage();
    process.send({
      rssKiB: rssKiB(),
      connections: held.length,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
    });
  }, 1000);
});
