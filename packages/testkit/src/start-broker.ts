import { once } from 'node:events';
import type net from 'node:net';
import {
  Broker,
  type BrokerHooks,
  type BrokerLimits,
  BrokerMetrics,
  type BrokerStorage,
  type ByteStream,
  type Clock,
  type ClusterBinding,
  createTcpServer,
  MemoryStorage,
  type TcpEngine,
} from '@breakwater/broker';

export interface TestBrokerOptions {
  limits?: Partial<BrokerLimits>;
  hooks?: BrokerHooks;
  storage?: BrokerStorage;
  clock?: Clock;
  /** Listener name used as metric label. */
  listener?: string;
  /** TCP port (default 0: any free port). A fixed port is for restart-on-the-same-port tests. */
  port?: number;
  /** Join a cluster (issue 15). */
  cluster?: ClusterBinding;
  /** How the listener holds connections: the broker's default (`handle`) unless a test says. */
  engine?: TcpEngine;
}

export interface TestBroker {
  broker: Broker;
  metrics: BrokerMetrics;
  port: number;
  url: string;
  /** Sockets currently open on the TCP listener (server side). */
  openSockets(): number;
  close(): Promise<void>;
}

/**
 * A Breakwater broker on a real TCP socket on port 0 (in-memory storage unless one is given),
 * torn down deterministically by `close()`.
 */
export async function startBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const storage = options.storage ?? new MemoryStorage();
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  const broker = new Broker({
    storage,
    metrics,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.hooks ? { hooks: options.hooks } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.cluster ? { cluster: options.cluster } : {}),
  });
  await broker.start();
  const listener = options.listener ?? 'test';
  const sockets = new Set<ByteStream>();
  // The broker's own TCP listener (the engine `breakwater up` runs), not a stand-in.
  const server = createTcpServer(broker, listener, options.engine ?? 'handle');
  server.on('connection', (socket: ByteStream) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen({ port: options.port ?? 0, host: '127.0.0.1' });
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    broker,
    metrics,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    openSockets: () => sockets.size,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await broker.close();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
