/**
 * Aedes (npm) on a plain TCP listener, in-memory persistence: the peer the bench compares with.
 * Usage: aedes-server.ts <port>. Prints one JSON line `{"ready":true,...}` once listening.
 */
import net from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2]);
const aedes = await Aedes.createBroker();
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  aedes.handle(socket);
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`);
});

function shutdown(): void {
  server.close();
  aedes.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
