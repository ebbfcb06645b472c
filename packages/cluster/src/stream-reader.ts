/**
 * Short-lived readers of the QoS 1/2 message stream (issue 15): the durable feed and session
 * replays. Each is an ephemeral pull consumer (R1, memory, no acks) created here rather than by the
 * client library's ordered consumer, because of how nats-server 2.9 behaves when one of its
 * servers is killed (seen in the cluster e2e test and reproduced by hand on 2.9.10):
 *
 * - the server does not notice a peer lost to kill -9 for minutes, and keeps placing about one new
 *   R1 consumer in three on it; creating such a consumer times out, and so does every later create
 *   or info request under the same name;
 * - nats.js's ordered consumer retries a failed create under the SAME name (30 times, about two
 *   minutes, for the first one; without end for a reset), and after a reconnect it asks
 *   `consumer.info()` of a consumer that lived on the dead server — which times out forever while
 *   its heartbeat monitoring stays off. The reader is then silently dead: no message, no error.
 *
 * So every attempt here uses a new name (a new placement) and is bounded by the JetStream request
 * timeout, and the callers check ordering (delivery sequence) and progress themselves.
 */
import { randomBytes } from 'node:crypto';
import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  type JsMsg,
  nanos,
} from 'nats';
import type { ClusterContext } from './context.js';

/**
 * Where a reader starts: a stream sequence, the first message stored at or after a time, or the
 * last message of each subject (KV key listings).
 */
export type ReadFrom = { seq: number } | { time: number } | 'last-per-subject';

/** What a reader needs of the node (a KV watcher's tests give it no broker). */
export type ReaderContext = Pick<ClusterContext, 'js' | 'jsm' | 'metrics' | 'streamName'>;

/** What to read: `stream` (default: the message stream), its subjects matching `filter`. */
export interface ReaderSpec {
  stream?: string;
  filter: string;
  from: ReadFrom;
  /** Only the headers (key listings: the payload is not needed). */
  headersOnly?: boolean;
}

/** An idle reader (its node died, or it was abandoned) is removed by the server after this. */
const INACTIVE_THRESHOLD_MS = 30_000;
const CREATE_RETRY_DELAY_MS = 250;

export class ReaderError extends Error {
  readonly code = 'BW_ERR_CLUSTER_READER';
}

export interface StreamReader {
  readonly name: string;
  readonly consumer: Consumer;
  /** Messages the consumer had to deliver when it was created. */
  readonly pendingAtStart: number;
  /**
   * Removes the consumer (best effort: one on a dead server cannot be reached; it times out there).
   * Never rejects; resolves when the server answered or the request timed out.
   */
  close(): Promise<void>;
}

function startOf(from: ReadFrom): Partial<ConsumerConfig> {
  if (from === 'last-per-subject') return { deliver_policy: DeliverPolicy.LastPerSubject };
  if ('seq' in from)
    return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, from.seq) };
  return {
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(Math.max(0, from.time)).toISOString(),
  };
}

/**
 * Creates a reader. A create that fails (typically: placed on a server that is gone) is retried
 * under a new name, up to `attempts` times, while `active()`.
 */
export async function openReader(
  ctx: ReaderContext,
  spec: ReaderSpec,
  attempts = 20,
  active: () => boolean = () => true,
): Promise<StreamReader> {
  const stream = spec.stream ?? ctx.streamName;
  let lastErr: unknown = null;
  for (let i = 0; i < attempts && active(); i++) {
    const name = `bwr_${randomBytes(8).toString('hex')}`;
    const config: Partial<ConsumerConfig> = {
      name,
      ack_policy: AckPolicy.None,
      filter_subject: spec.filter,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(INACTIVE_THRESHOLD_MS),
      ...(spec.headersOnly === true ? { headers_only: true } : {}),
      ...startOf(spec.from),
    };
    try {
      const info = await ctx.jsm.consumers.add(stream, config);
      return {
        name,
        consumer: ctx.js.consumers.getPullConsumerFor(info),
        pendingAtStart: info.num_pending,
        close: () =>
          ctx.jsm.consumers.delete(stream, name).then(
            () => {},
            () => {},
          ),
      };
    } catch (err) {
      lastErr = err;
      ctx.metrics.jetstreamErrors.inc({ op: 'reader' });
      // Placed on a dead server, the consumer may exist there: ask for its removal, move on.
      void ctx.jsm.consumers.delete(stream, name).catch(() => {});
      await new Promise((r) => setTimeout(r, CREATE_RETRY_DELAY_MS));
    }
  }
  throw new ReaderError(`cannot create a reader of ${stream} on ${spec.filter}`, { cause: lastErr });
}

/** Whether `m` follows the previous delivery of its consumer (no message lost on the way). */
export function inOrder(m: JsMsg, lastDelivery: number): boolean {
  return m.info.deliverySequence === lastDelivery + 1;
}

/** How long a read may keep trying: consumers replaced (`rounds`), creates per consumer (`attempts`). */
export interface ReadBudget {
  /** False: stop early (the session ended, the node is closing). */
  active?: () => boolean;
  rounds?: number;
  attempts?: number;
}

/**
 * Reads every message on `filter` from `from` until nothing is pending, calling `each` in stream
 * order (session replays). A skipped delivery, a failed fetch, or a fetch that brings nothing
 * while the consumer says messages are pending replaces the consumer, from the sequence after the
 * last message read, up to `rounds` consumers. Stops early when `active()` turns false.
 */
export async function readToEnd(
  ctx: ReaderContext,
  spec: ReaderSpec,
  each: (m: JsMsg) => void,
  { active = () => true, rounds = 10, attempts = 20 }: ReadBudget = {},
): Promise<void> {
  let start = spec.from;
  let lastSeq = 0;
  let lastErr: unknown = null;
  for (let round = 0; round < rounds && active(); round++) {
    const reader = await openReader(ctx, { ...spec, from: start }, attempts, active);
    let lastDelivery = 0;
    try {
      if (reader.pendingAtStart === 0) return;
      for (;;) {
        if (!active()) return;
        const batch = await reader.consumer.fetch({ max_messages: 256, expires: 2000 });
        let got = 0;
        let pending = -1;
        let gap = false;
        for await (const m of batch) {
          if (!inOrder(m, lastDelivery)) {
            gap = true;
            break;
          }
          lastDelivery = m.info.deliverySequence;
          got++;
          pending = m.info.pending;
          if (m.seq <= lastSeq) continue;
          lastSeq = m.seq;
          each(m);
        }
        if (gap) break;
        if (got > 0 && pending === 0) return;
        if (got === 0) {
          // Nothing came: done if nothing is pending, otherwise this consumer is stuck.
          if ((await reader.consumer.info()).num_pending === 0) return;
          break;
        }
      }
    } catch (err) {
      lastErr = err;
    } finally {
      void reader.close();
    }
    if (lastSeq > 0) start = { seq: lastSeq + 1 };
  }
  if (!active()) return;
  throw new ReaderError(`reading ${spec.filter} did not complete`, { cause: lastErr });
}

/**
 * The keys of KV bucket `bucket` under `filter` (`>`: all), without deleted ones: the same as
 * `kv.keys()`, whose ordered consumer has the weaknesses described above.
 */
export async function kvKeys(
  ctx: ReaderContext,
  bucket: string,
  filter = '>',
  budget: ReadBudget = { rounds: 3, attempts: 5 },
): Promise<string[]> {
  const prefix = `$KV.${bucket}.`;
  const keys = new Map<string, boolean>();
  await readToEnd(
    ctx,
    { stream: `KV_${bucket}`, filter: prefix + filter, from: 'last-per-subject', headersOnly: true },
    (m) => {
      const op = m.headers?.get('KV-Operation');
      keys.set(m.subject.slice(prefix.length), op !== 'DEL' && op !== 'PURGE');
    },
    budget,
  );
  return [...keys].filter(([, live]) => live).map(([k]) => k);
}

/**
 * Follows a pull consumer's status and calls `replace` once when it shows the consumer is lost:
 * two idle heartbeats missed, the consumer gone, or no responders. Ends quietly with the
 * messages, or when `current()` turns false (the reader moved on to another consumer).
 */
export async function watchConsumerStatus(
  messages: ConsumerMessages,
  current: () => boolean,
  replace: (reason: string) => void,
): Promise<void> {
  try {
    for await (const s of await messages.status()) {
      if (!current()) return;
      const t = s.type as string;
      if (
        (t === 'heartbeats_missed' && Number(s.data) >= 2) ||
        t === 'consumer_not_found' ||
        t === 'consumer_deleted' ||
        t === 'no_responders'
      ) {
        replace(t);
        return;
      }
    }
  } catch {
    // The status iterator ends with the messages.
  }
}
