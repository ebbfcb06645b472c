import { EventEmitter } from 'node:events';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { ClientFactory } from '../../src/device-options.js';

/**
 * A scripted stand-in for an MQTT.js client, for unit tests of the reconnect loop: the test
 * decides what the "broker" answers. It mimics the events MQTT.js emits (packetreceive, connect,
 * error, close) in the same order.
 */
export class FakeClient extends EventEmitter {
  readonly url: string;
  readonly options: IClientOptions;
  ended = false;
  destroyed = false;
  keepAlive: { enable: boolean; ms: number } | null = null;
  readonly subscriptions: string[] = [];
  readonly published: Array<{ topic: string; payload: string; retain: boolean }> = [];
  readonly stream = {
    setKeepAlive: (enable: boolean, ms: number) => {
      this.keepAlive = { enable, ms };
    },
    destroy: () => {
      if (this.destroyed) return;
      this.destroyed = true;
      queueMicrotask(() => this.emit('close'));
    },
  };

  constructor(url: string, options: IClientOptions) {
    super();
    this.url = url;
    this.options = options;
  }

  end(_force?: boolean, _opts?: unknown, cb?: () => void): this {
    this.ended = true;
    this.stream.destroy();
    cb?.();
    return this;
  }

  subscribe(topics: string[], _opts: unknown, cb: (err: Error | null, granted: unknown[]) => void): this {
    this.subscriptions.push(...topics);
    cb(
      null,
      topics.map((topic) => ({ topic, qos: 1 })),
    );
    return this;
  }

  publish(topic: string, payload: string, opts: { retain?: boolean }, cb?: (err?: Error) => void): this {
    this.published.push({ topic, payload, retain: opts.retain === true });
    cb?.();
    return this;
  }

  async publishAsync(topic: string, payload: string, opts: { retain?: boolean } = {}): Promise<void> {
    this.published.push({ topic, payload, retain: opts.retain === true });
  }

  // ---- scripting ----

  accept(sessionPresent = false): void {
    this.emit('packetreceive', { cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent });
    this.emit('connect', { cmd: 'connack', reasonCode: 0, sessionPresent });
  }

  refuse(code: number, properties?: Record<string, unknown>): void {
    const v5 = this.options.protocolVersion === 5;
    this.emit('packetreceive', {
      cmd: 'connack',
      sessionPresent: false,
      ...(v5 ? { reasonCode: code } : { returnCode: code }),
      ...(properties ? { properties } : {}),
    });
    const err = Object.assign(new Error(`Connection refused: ${code}`), { code });
    this.stream.destroy();
    this.emit('error', err);
  }

  networkError(code = 'ECONNREFUSED'): void {
    this.emit('error', Object.assign(new Error(`connect ${code}`), { code }));
    this.stream.destroy();
  }

  serverDisconnect(reasonCode: number, properties?: Record<string, unknown>): void {
    this.emit('packetreceive', { cmd: 'disconnect', reasonCode, ...(properties ? { properties } : {}) });
    this.emit('disconnect', { cmd: 'disconnect', reasonCode });
  }

  message(topic: string, payload: string | Buffer, properties: Record<string, unknown> = {}): void {
    const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    this.emit('message', topic, buf, { cmd: 'publish', topic, payload: buf, properties });
  }
}

export function fakeFactory(): { factory: ClientFactory; clients: FakeClient[]; last: () => FakeClient } {
  const clients: FakeClient[] = [];
  return {
    clients,
    factory: (url, options) => {
      const c = new FakeClient(url, options);
      clients.push(c);
      return c as unknown as MqttClient;
    },
    last: () => {
      const c = clients[clients.length - 1];
      if (!c) throw new Error('no client created yet');
      return c;
    },
  };
}

/** Let queued microtasks (and promise continuations) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Polls `condition` (bounded by a deadline) while letting I/O and microtasks run. */
export async function until(condition: () => boolean, what = 'condition', timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 5));
  }
}
