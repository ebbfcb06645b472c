import type { ByteStream } from '../byte-stream.js';
import type { ListenerConfig } from '../config/schema.js';
import type { ConnectionInfo } from '../options.js';

/** What a transport hands accepted streams to: the Broker, or a stub in tests. */
export interface StreamHandler {
  handle(stream: ByteStream, info: ConnectionInfo): void;
}

/** A listener as the transports need it: the validated config plus how an operator changes its port. */
export interface ListenerSpec extends ListenerConfig {
  /**
   * Named in a port-in-use error so the operator knows what to change: a flag (`--mqtt-port`) or
   * a config key (`listeners[2].port in /etc/breakwater.yaml`).
   */
  portSource?: string;
}

/** A started listener, with the port it really got (port 0 picks a free one). */
export interface ListenerAddress {
  name: string;
  type: ListenerConfig['type'];
  host: string;
  port: number;
  /** A URL a client on this machine can use: `mqtt://127.0.0.1:1883`, `ws://127.0.0.1:8083/mqtt`. */
  url: string;
}
