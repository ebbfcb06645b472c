export { duplexPair } from './duplex-pair.js';
export { FakeClock } from './fake-clock.js';
export {
  freePort,
  NATS_SERVER_BIN,
  type NatsClusterHandle,
  type NatsServerHandle,
  requireNatsServer,
  startNatsCluster,
} from './nats-cluster.js';
export { type Packet, RawClient } from './raw-client.js';
export { isReachable, requireService } from './services.js';
export { startBroker, type TestBroker, type TestBrokerOptions } from './start-broker.js';
