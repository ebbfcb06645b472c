/**
 * A session's queue of messages waiting to be sent (offline, or beyond the in-flight window), in
 * delivery order, with its size in bytes so both limits (`mqtt.offlineQueueLimit`,
 * `mqtt.offlineQueueBytes`) are checked without walking it. Allocated on the first queued
 * message and dropped when it empties: an idle session has none.
 */
import type { OutboxRecord } from './storage/types.js';

/** What one queued message counts against `mqtt.offlineQueueBytes`. */
export function queuedBytes(rec: OutboxRecord): number {
  return rec.topic.length + rec.payload.length;
}

export class OutboundQueue {
  readonly items: OutboxRecord[] = [];
  /** Sum of `queuedBytes()` over `items`. */
  bytes = 0;

  get length(): number {
    return this.items.length;
  }

  push(rec: OutboxRecord): void {
    this.items.push(rec);
    this.bytes += queuedBytes(rec);
  }

  /** Removes and returns the oldest message. */
  shift(): OutboxRecord | undefined {
    const rec = this.items.shift();
    if (rec !== undefined) this.bytes -= queuedBytes(rec);
    return rec;
  }

  /** Removes `rec` wherever it is (taken back for another member of its shared group); false when absent. */
  remove(rec: OutboxRecord): boolean {
    const i = this.items.indexOf(rec);
    if (i < 0) return false;
    this.items.splice(i, 1);
    this.bytes -= queuedBytes(rec);
    return true;
  }

  /** Removes the `n` oldest messages (they were sent or expired). */
  removeFirst(n: number): void {
    const items = this.items;
    for (let i = 0; i < n; i++) this.bytes -= queuedBytes(items[i]!);
    items.splice(0, n);
  }
}
