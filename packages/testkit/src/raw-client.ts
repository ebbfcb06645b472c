import { once } from 'node:events';
import net from 'node:net';
import mqtt from 'mqtt-packet';

export type Packet = mqtt.Packet;

/**
 * A test client that speaks raw MQTT packets over a real socket: send any packet object (or raw
 * bytes, for malformed input) and await what the broker answers, packet by packet.
 */
export class RawClient {
  readonly socket: net.Socket;
  readonly received: Packet[] = [];
  #waiters: Array<{
    match: (p: Packet) => boolean;
    resolve: (p: Packet) => void;
    reject: (e: Error) => void;
  }> = [];
  #parser: ReturnType<typeof mqtt.parser>;
  #closed: Promise<void>;
  #isClosed = false;
  protocolVersion: number;

  private constructor(socket: net.Socket, protocolVersion: number) {
    this.socket = socket;
    this.protocolVersion = protocolVersion;
    this.#parser = mqtt.parser({ protocolVersion });
    this.#parser.on('packet', (p: Packet) => this.#onPacket(p));
    this.#parser.on('error', (err: Error) => this.#failAll(err));
    socket.on('data', (chunk: Buffer) => this.#parser.parse(chunk));
    this.#closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.#isClosed = true;
        this.#failAll(new Error('socket closed'));
        resolve();
      });
    });
    socket.on('error', () => {});
  }

  static async connect(
    port: number,
    options: { host?: string; protocolVersion?: number } = {},
  ): Promise<RawClient> {
    const socket = net.connect({ port, host: options.host ?? '127.0.0.1' });
    await once(socket, 'connect');
    return new RawClient(socket, options.protocolVersion ?? 4);
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Resolves when the broker (or we) closed the socket. */
  closed(): Promise<void> {
    return this.#closed;
  }

  send(packet: Packet | Buffer): void {
    if (Buffer.isBuffer(packet)) {
      this.socket.write(packet);
      return;
    }
    this.socket.write(mqtt.generate(packet, { protocolVersion: this.protocolVersion }));
  }

  /** Send a CONNECT and await the CONNACK. */
  async connect(packet: Partial<mqtt.IConnectPacket> = {}, timeoutMs = 5000): Promise<mqtt.IConnackPacket> {
    const protocolVersion = (packet.protocolVersion as number | undefined) ?? this.protocolVersion;
    this.protocolVersion = protocolVersion;
    this.#parser = this.#reparser(protocolVersion);
    this.send({
      cmd: 'connect',
      protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: protocolVersion as 3 | 4 | 5,
      clientId: packet.clientId ?? `raw-${Math.random().toString(16).slice(2, 10)}`,
      clean: packet.clean ?? true,
      keepalive: packet.keepalive ?? 60,
      ...packet,
    } as mqtt.IConnectPacket);
    return (await this.next('connack', timeoutMs)) as mqtt.IConnackPacket;
  }

  #reparser(protocolVersion: number) {
    const p = mqtt.parser({ protocolVersion });
    p.on('packet', (pk: Packet) => this.#onPacket(pk));
    p.on('error', (err: Error) => this.#failAll(err));
    this.socket.removeAllListeners('data');
    this.socket.on('data', (chunk: Buffer) => p.parse(chunk));
    return p;
  }

  /** Next received packet of the given type (or any), already received or still to come. */
  next(cmd?: Packet['cmd'], timeoutMs = 5000): Promise<Packet> {
    const match = (p: Packet) => cmd === undefined || p.cmd === cmd;
    const idx = this.received.findIndex(match);
    if (idx >= 0) return Promise.resolve(this.received.splice(idx, 1)[0]!);
    if (this.#isClosed)
      return Promise.reject(new Error(`socket closed while waiting for ${cmd ?? 'a packet'}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${cmd ?? 'a packet'}`));
      }, timeoutMs);
      const done = (p: Packet) => {
        clearTimeout(timer);
        resolve(p);
      };
      this.#waiters.push({
        match,
        resolve: done,
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  #onPacket(p: Packet): void {
    const i = this.#waiters.findIndex((w) => w.match(p));
    if (i >= 0) {
      const [w] = this.#waiters.splice(i, 1);
      w!.resolve(p);
    } else {
      this.received.push(p);
    }
  }

  #failAll(err: Error): void {
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w.reject(err);
  }

  /** Close our side and wait for the socket to be fully closed. */
  async end(): Promise<void> {
    if (!this.#isClosed) this.socket.destroy();
    await this.#closed;
  }
}
