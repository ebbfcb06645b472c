/**
 * Fallback launcher for Breakwater when the `breakwater up` CLI cannot run: the broker core with
 * in-memory storage served on TCP the way testkit's startBroker does. The results say which
 * launcher was used. Usage: breakwater-server.ts <port>.
 */
import net from 'node:net';
import { Broker, BrokerMetrics, MemoryStorage } from '@breakwater/broker';

const port = Number(process.argv[2]);
const broker = new Broker({
  storage: new MemoryStorage(),
  metrics: new BrokerMetrics({ defaultMetrics: false }),
});
await broker.start();
const sockets = new Set<net.Socket>();
const server = net.createServer((socket) => {
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  broker.handle(socket, {
    listener: 'bench',
    transport: 'tcp',
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`);
});

async function shutdown(): Promise<void> {
  server.close();
  await broker.close();
  for (const s of sockets) s.destroy();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
