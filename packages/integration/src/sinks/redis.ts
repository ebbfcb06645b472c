/**
 * Redis streams sink (`ioredis`): one XADD per message, all of a batch in one pipeline. Entry
 * fields: `id` (message id), `topic`, `publisher`, `receivedAt` (epoch ms), `payload` (bytes as
 * published). `stream` names the key (`{topic}` → the MQTT topic); `maxLen` trims approximately.
 *
 * The client never queues commands while disconnected (`enableOfflineQueue: false`): a command
 * against a Redis that is down fails at once and the batch stays in the durable buffer — the
 * buffer is the queue, not the client's memory. ioredis reconnects in the background.
 * Errors: a reply error for one entry (WRONGTYPE: the key is not a stream) rejects that message
 * (DLQ); connection errors make the sink unavailable. Redis has no idempotency key for XADD, so a
 * batch retried after its pipeline half ran is written twice (consumers dedupe on `id`).
 */
import type { RedisSinkConfig } from '@breakwater/broker';
import { Redis } from 'ioredis';
import { SinkRejectedError, SinkUnavailableError } from '../errors.js';
import { type BufferedMessage, DELIVERED, type DeliveryOutcome, type Sink } from '../types.js';

export class RedisSink implements Sink {
  readonly type = 'redis' as const;
  readonly name: string;
  readonly #config: RedisSinkConfig;
  readonly #redis: Redis;
  readonly #key: (topic: string) => string;

  constructor(name: string, config: RedisSinkConfig) {
    this.name = name;
    this.#config = config;
    this.#redis = new Redis(config.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: config.timeoutMs,
      commandTimeout: config.timeoutMs,
      connectionName: `breakwater-sink-${name}`,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
    });
    // Connection errors are reported through deliver(); an unhandled 'error' event would be noise.
    this.#redis.on('error', () => {});
    const i = config.stream.indexOf('{topic}');
    const before = i === -1 ? config.stream : config.stream.slice(0, i);
    const after = i === -1 ? null : config.stream.slice(i + '{topic}'.length);
    this.#key = after === null ? () => before : (topic) => before + topic + after;
  }

  async deliver(batch: readonly BufferedMessage[]): Promise<DeliveryOutcome> {
    const r = this.#redis;
    if (r.status === 'wait' || r.status === 'end') {
      try {
        await r.connect();
      } catch (err) {
        throw new SinkUnavailableError(this.name, `connect: ${(err as Error).message}`, { cause: err });
      }
    }
    const trim = this.#config.maxLen !== undefined ? ['MAXLEN', '~', String(this.#config.maxLen)] : [];
    const p = r.pipeline();
    for (const m of batch) {
      p.xadd(
        this.#key(m.topic),
        ...trim,
        '*',
        'id',
        String(m.msgId),
        'topic',
        m.topic,
        'publisher',
        m.publisher ?? '',
        'receivedAt',
        String(m.receivedAt),
        'payload',
        m.payload,
      );
    }
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await p.exec();
    } catch (err) {
      throw new SinkUnavailableError(this.name, `XADD: ${(err as Error).message}`, { cause: err });
    }
    if (results === null) throw new SinkUnavailableError(this.name, 'pipeline discarded');
    const rejected: DeliveryOutcome['rejected'] = [];
    for (let index = 0; index < results.length; index++) {
      const err = results[index]![0];
      if (err === null) continue;
      // A reply error (the server ran the command and refused it) is about this entry.
      if (err.name === 'ReplyError')
        rejected.push({ index, error: new SinkRejectedError(this.name, err.message, { cause: err }) });
      else throw new SinkUnavailableError(this.name, `XADD: ${err.message}`, { cause: err });
    }
    return rejected.length === 0 ? DELIVERED : { rejected };
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
