/**
 * What flows through the integration: a message handed to a rule, buffered for one sink, and the
 * contract every sink implements.
 */
import type { SinkType } from '@breakwater/broker';

/** One message in one sink's durable buffer. */
export interface BufferedMessage {
  /** Row id in the sink's queue (delivery order). */
  readonly seq: number;
  /**
   * Message id: unique for the life of the buffer file and the same in every sink the message
   * went to, and kept across a DLQ replay. Sinks pass it on as an idempotency key.
   */
  readonly msgId: number;
  readonly rule: string;
  readonly topic: string;
  readonly payload: Buffer;
  /** Client id of the publisher; null for server-originated messages. */
  readonly publisher: string | null;
  /** Epoch ms when the broker routed it. */
  readonly receivedAt: number;
}

/** Messages of a batch the sink refused for what they are (bad data), by index in the batch. */
export interface DeliveryOutcome {
  rejected: Array<{ index: number; error: Error }>;
}

export const DELIVERED: DeliveryOutcome = Object.freeze({ rejected: [] }) as DeliveryOutcome;

/**
 * A sink: `deliver` resolves when the sink has the batch (minus `rejected`), and throws a
 * SinkUnavailableError (or any error) when it cannot take it now — the whole batch is then retried
 * later, so delivery is at least once. Sinks must not throw at construction when their service
 * is down: they connect (and reconnect) inside `deliver`.
 */
export interface Sink {
  readonly name: string;
  readonly type: SinkType;
  deliver(batch: readonly BufferedMessage[]): Promise<DeliveryOutcome>;
  close(): Promise<void>;
}
