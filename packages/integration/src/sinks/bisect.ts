/**
 * Finding the bad messages of a refused batch: a sink that refuses a whole batch for its data
 * (SinkRejectedError) is asked again with each half, down to single messages, which are then the
 * rejected ones. The good messages of the batch are delivered; a batch with one bad message costs
 * about 2·log2(n) extra requests. Any other error (unavailable) aborts the whole batch: it stays
 * buffered and is retried (parts already delivered are delivered again: at least once).
 */
import { SinkRejectedError } from '../errors.js';
import type { BufferedMessage, DeliveryOutcome } from '../types.js';

export async function bisect(
  batch: readonly BufferedMessage[],
  send: (part: readonly BufferedMessage[]) => Promise<DeliveryOutcome>,
  offset = 0,
): Promise<DeliveryOutcome> {
  try {
    const out = await send(batch);
    if (offset === 0 || out.rejected.length === 0) return out;
    return { rejected: out.rejected.map((r) => ({ index: r.index + offset, error: r.error })) };
  } catch (err) {
    if (!(err instanceof SinkRejectedError)) throw err;
    if (batch.length === 1) return { rejected: [{ index: offset, error: err }] };
    const mid = batch.length >> 1;
    const left = await bisect(batch.slice(0, mid), send, offset);
    const right = await bisect(batch.slice(mid), send, offset + mid);
    return { rejected: [...left.rejected, ...right.rejected] };
  }
}
