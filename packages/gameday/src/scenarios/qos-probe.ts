/**
 * The QoS probe: one MQTT subscriber (raw socket, mqtt-packet, MQTT 3.1.1) that subscribes at QoS 1
 * to everything devices publish and counts what arrives. "QoS 1 messages lost" in the report is
 * what the devices had acknowledged by the broker (PUBACK) minus what reached this subscriber —
 * the promise a broker makes with a PUBACK, checked end to end.
 *
 * The probe keeps a persistent session (clean session off, fixed client id) and reconnects after
 * a drop, so a message queued for it while it reconnects is still delivered, not miscounted.
 * Redeliveries (DUP flag) are counted apart, and retained deliveries (server state replayed on
 * subscribe) are not device traffic.
 */
import net from 'node:net';
import mqtt, { type Packet } from 'mqtt-packet';

export interface QosProbeOptions {
  host: string;
  port: number;
  clientId?: string;
  /** Topic filters (default every device topic). */
  filters?: string[];
  /** Which topics count (default: device data under `devices/...`, what Fleet's qos1Acked counts). */
  countable?: (topic: string) => boolean;
  onMessage?: (topic: string, payload: Buffer, atMs: number) => void;
}

export interface QosProbeStats {
  connected: boolean;
  delivered: number;
  deliveredQos1: number;
  duplicates: number;
  reconnects: number;
}

const defaultFilters = ['devices/#'];

/**
 * Device data (telemetry under `devices/{id}/...`): the messages the fleet's `qos1Acked` counts
 * (its OTA status and config reports under `$fleet/` are not part of it).
 */
export function isDeviceTraffic(topic: string): boolean {
  return topic.startsWith('devices/');
}

export class QosProbe {
  readonly #o: QosProbeOptions;
  readonly #stats: QosProbeStats = {
    connected: false,
    delivered: 0,
    deliveredQos1: 0,
    duplicates: 0,
    reconnects: 0,
  };
  #socket: net.Socket | null = null;
  #closed = false;
  #ready: ((err?: Error) => void) | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;

  constructor(options: QosProbeOptions) {
    this.#o = options;
  }

  /** Resolves once subscribed (rejects if the first connection is refused). */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ready = (err) => (err ? reject(err) : resolve());
      this.#connect();
    });
  }

  stats(): QosProbeStats {
    return { ...this.#stats };
  }

  #connect(): void {
    const countable = this.#o.countable ?? isDeviceTraffic;
    const socket = net.connect({ host: this.#o.host, port: this.#o.port });
    socket.setNoDelay(true);
    this.#socket = socket;
    const parser = mqtt.parser({ protocolVersion: 4 });
    const send = (p: Packet) => socket.write(mqtt.generate(p, { protocolVersion: 4 }));
    socket.on('connect', () => {
      send({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: this.#o.clientId ?? `gameday-probe-${process.pid}`,
        clean: false,
        keepalive: 30,
      });
    });
    parser.on('packet', (p: Packet) => {
      switch (p.cmd) {
        case 'connack':
          if (p.returnCode !== 0) {
            this.#closed = true;
            this.#fail(new Error(`QoS probe refused: CONNACK return code ${p.returnCode}`));
            socket.destroy();
            return;
          }
          this.#stats.connected = true;
          send({
            cmd: 'subscribe',
            messageId: 1,
            subscriptions: (this.#o.filters ?? defaultFilters).map((topic) => ({ topic, qos: 1 })),
          });
          this.#pingTimer ??= setInterval(() => {
            if (this.#stats.connected) send({ cmd: 'pingreq' });
          }, 15_000);
          break;
        case 'suback': {
          const refused = p.granted.filter(
            (g) => (typeof g === 'number' ? g : (g as { qos: number }).qos) >= 0x80,
          );
          if (refused.length === p.granted.length) {
            this.#fail(new Error('QoS probe: every subscription refused'));
            return;
          }
          this.#fail();
          break;
        }
        case 'publish': {
          if (p.qos > 0 && p.messageId !== undefined) send({ cmd: 'puback', messageId: p.messageId });
          if (p.retain || !countable(p.topic)) break;
          if (p.dup) {
            this.#stats.duplicates++;
            break;
          }
          this.#stats.delivered++;
          if (p.qos === 1) this.#stats.deliveredQos1++;
          const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
          this.#o.onMessage?.(p.topic, payload, Date.now());
          break;
        }
        default:
          break;
      }
    });
    socket.on('data', (chunk) => parser.parse(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#stats.connected = false;
      if (this.#closed) return;
      this.#stats.reconnects++;
      this.#retryTimer = setTimeout(() => this.#connect(), 200);
    });
  }

  #fail(err?: Error): void {
    const ready = this.#ready;
    this.#ready = null;
    ready?.(err);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    const s = this.#socket;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      s.once('close', () => resolve());
      s.end(mqtt.generate({ cmd: 'disconnect' }, { protocolVersion: 4 }));
      setTimeout(() => s.destroy(), 1000).unref();
    });
  }
}
