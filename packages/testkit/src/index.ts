export { duplexPair } from './duplex-pair.js';
export { FakeClock } from './fake-clock.js';
export { type Packet, RawClient } from './raw-client.js';
export { isReachable, requireService } from './services.js';
export { startBroker, type TestBroker, type TestBrokerOptions } from './start-broker.js';
