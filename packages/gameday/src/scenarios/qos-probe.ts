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
  /**
   * Subscriber connections (default 1). With more, they share one subscription
   * (`$share/gameday-probe/...`, MQTT 5.0 §4.8.2) so the broker spreads the messages: one session's
   * in-flight window and queue bound what a single subscriber can take per round trip.
   */
  connections?: number;
}

export interface QosProbeStats {
  connected: boolean;
  delivered: number;
  deliveredQos1: number;
  duplicates: number;
  reconnects: number;
  /** CONNECTs the broker answered with "server unavailable" (busy); the probe retried them. */
  refused: number;
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
    refused: 0,
  };
  readonly #sockets: (net.Socket | null)[];
  readonly #up: boolean[];
  #closed = false;
  #ready: ((err?: Error) => void) | null = null;
  #pending = 0;
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  #pingTimer: NodeJS.Timeout | null = null;

  constructor(options: QosProbeOptions) {
    this.#o = options;
    const n = Math.max(1, Math.floor(options.connections ?? 1));
    this.#sockets = Array.from({ length: n }, () => null);
    this.#up = Array.from({ length: n }, () => false);
  }

  /** Resolves once every connection is subscribed (rejects if one is refused). */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending = this.#sockets.length;
      this.#ready = (err) => (err ? reject(err) : resolve());
      for (let i = 0; i < this.#sockets.length; i++) this.#connect(i);
    });
  }

  stats(): QosProbeStats {
    return { ...this.#stats, connected: this.#up.every(Boolean) };
  }

  #connect(lane: number): void {
    const countable = this.#o.countable ?? isDeviceTraffic;
    const shared = this.#sockets.length > 1;
    const base = this.#o.clientId ?? `gameday-probe-${process.pid}`;
    const socket = net.connect({ host: this.#o.host, port: this.#o.port });
    socket.setNoDelay(true);
    this.#sockets[lane] = socket;
    const parser = mqtt.parser({ protocolVersion: 4 });
    const send = (p: Packet) => socket.write(mqtt.generate(p, { protocolVersion: 4 }));
    socket.on('connect', () => {
      send({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: shared ? `${base}-${lane}` : base,
        clean: false,
        keepalive: 30,
      });
    });
    parser.on('packet', (p: Packet) => {
      switch (p.cmd) {
        case 'connack':
          if (p.returnCode === 3) {
            // Server unavailable (MQTT 3.1.1's answer to "busy": overload, rate, handshakes): a
            // loaded broker may refuse the probe like any client. Try again (the close handler
            // reconnects) until start()'s caller gives up.
            this.#stats.refused++;
            socket.destroy();
            return;
          }
          if (p.returnCode !== 0) {
            this.#closed = true;
            this.#fail(new Error(`QoS probe refused: CONNACK return code ${p.returnCode}`));
            socket.destroy();
            return;
          }
          this.#up[lane] = true;
          send({
            cmd: 'subscribe',
            messageId: 1,
            subscriptions: (this.#o.filters ?? defaultFilters).map((topic) => ({
              topic: shared ? `$share/gameday-probe/${topic}` : topic,
              qos: 1,
            })),
          });
          break;
        case 'suback': {
          const refused = p.granted.filter(
            (g) => (typeof g === 'number' ? g : (g as { qos: number }).qos) >= 0x80,
          );
          if (refused.length === p.granted.length) {
            this.#fail(new Error('QoS probe: every subscription refused'));
            return;
          }
          if (--this.#pending <= 0) this.#fail();
          this.#pingTimer ??= setInterval(() => {
            for (let i = 0; i < this.#sockets.length; i++) {
              const s = this.#sockets[i];
              if (this.#up[i] && s && !s.destroyed) {
                s.write(mqtt.generate({ cmd: 'pingreq' }, { protocolVersion: 4 }));
              }
            }
          }, 15_000);
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
      this.#up[lane] = false;
      if (this.#closed) return;
      this.#stats.reconnects++;
      const timer = setTimeout(() => {
        this.#retryTimers.delete(timer);
        this.#connect(lane);
      }, 200);
      this.#retryTimers.add(timer);
    });
  }

  #fail(err?: Error): void {
    const ready = this.#ready;
    this.#ready = null;
    ready?.(err);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#retryTimers) clearTimeout(t);
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    await Promise.all(
      this.#sockets.map((s) => {
        if (!s || s.destroyed) return Promise.resolve();
        return new Promise<void>((resolve) => {
          s.once('close', () => resolve());
          s.end(mqtt.generate({ cmd: 'disconnect' }, { protocolVersion: 4 }));
          setTimeout(() => s.destroy(), 1000).unref();
        });
      }),
    );
  }
}
