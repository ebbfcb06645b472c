/**
 * HTTP webhook sink: one JSON POST per batch (Node's fetch, undici), signed with HMAC-SHA256 when
 * a secret is configured.
 *
 * Body: `{ sink, batch, messages: [{ id, rule, topic, publisher, receivedAt, payload, encoding }] }`
 * (`encoding`: `utf8` when the payload is valid UTF-8, else `base64`). Headers:
 * `x-breakwater-batch` (`<first id>-<last id>`, the same on every retry) and
 * `x-breakwater-signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` — a receiver
 * recomputes it over the raw body and rejects stale `t` (replays).
 *
 * Answers: 2xx delivered; 408, 429, 5xx, network errors, timeouts: unavailable (retry); 400, 413,
 * 422: the batch holds bad data — split in halves until the messages the receiver refuses are
 * found (they go to the DLQ); other 4xx (401, 403, 404, …) are a configuration problem: unavailable,
 * retried, never dead-lettered.
 */

import { isUtf8 } from 'node:buffer';
import { createHmac } from 'node:crypto';
import { BreakwaterError, type WebhookSinkConfig } from '@breakwater/broker';
import { SinkRejectedError, SinkUnavailableError } from '../errors.js';
import { type BufferedMessage, DELIVERED, type DeliveryOutcome, type Sink } from '../types.js';
import { bisect } from './bisect.js';

const MESSAGE_LEVEL = new Set([400, 413, 422]);

export class WebhookSink implements Sink {
  readonly type = 'webhook' as const;
  readonly name: string;
  readonly #config: WebhookSinkConfig;
  readonly #secret: string | null;

  constructor(name: string, config: WebhookSinkConfig, env: NodeJS.ProcessEnv = process.env) {
    this.name = name;
    this.#config = config;
    const fromEnv = config.secretEnv !== undefined ? env[config.secretEnv] : undefined;
    if (config.secretEnv !== undefined && (fromEnv === undefined || fromEnv === '')) {
      throw new BreakwaterError(
        'BW_ERR_CONFIG_INVALID',
        `integration.sinks.webhook.${name}.secretEnv: environment variable ${config.secretEnv} is not set`,
      );
    }
    this.#secret = fromEnv ?? config.secret ?? null;
  }

  deliver(batch: readonly BufferedMessage[]): Promise<DeliveryOutcome> {
    return bisect(batch, (part) => this.#post(part));
  }

  async #post(batch: readonly BufferedMessage[]): Promise<DeliveryOutcome> {
    const batchId = `${batch[0]!.msgId}-${batch[batch.length - 1]!.msgId}`;
    const body = JSON.stringify({ sink: this.name, batch: batchId, messages: batch.map(view) });
    const headers: Record<string, string> = {
      ...this.#config.headers,
      'content-type': 'application/json',
      'x-breakwater-sink': this.name,
      'x-breakwater-batch': batchId,
    };
    if (this.#secret !== null) headers['x-breakwater-signature'] = sign(this.#secret, body, Date.now());
    let res: Response;
    try {
      res = await fetch(this.#config.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.#config.timeoutMs),
      });
    } catch (err) {
      const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new SinkUnavailableError(this.name, `POST ${this.#config.url}: ${why}`, { cause: err });
    }
    // Read the body so the connection goes back to the pool (and to show it on errors).
    const text = await res.text().catch(() => '');
    if (res.ok) return DELIVERED;
    const detail = `POST ${this.#config.url}: HTTP ${res.status}${text ? ` ${text.slice(0, 200)}` : ''}`;
    if (MESSAGE_LEVEL.has(res.status)) throw new SinkRejectedError(this.name, detail);
    throw new SinkUnavailableError(this.name, detail);
  }

  async close(): Promise<void> {}
}

/** `t=<unix s>,v1=<hex>`: HMAC-SHA256 over `<t>.<body>` (the Stripe scheme: the time is signed too). */
export function sign(secret: string, body: string, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  const v1 = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  return `t=${t},v1=${v1}`;
}

function view(m: BufferedMessage) {
  const utf8 = isUtf8(m.payload);
  return {
    id: m.msgId,
    rule: m.rule,
    topic: m.topic,
    publisher: m.publisher,
    receivedAt: new Date(m.receivedAt).toISOString(),
    payload: m.payload.toString(utf8 ? 'utf8' : 'base64'),
    encoding: utf8 ? 'utf8' : 'base64',
  };
}
