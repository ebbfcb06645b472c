/**
 * Messages a session's full queue dropped (delivery.ts `enqueue`). Each drop is counted in
 * `breakwater_messages_dropped_total{reason}` at once; the per-session report (a warning log line
 * and the observers' `messagesDropped`, which the control plane can keep in the device's history)
 * goes out at most once per `QUEUE_DROP_REPORT_INTERVAL_MS` per session with the counts since the
 * last one, so a slow consumer dropping thousands of messages a second does not flood either.
 * Only sessions that dropped in the last interval are held here; the broker's 1 s sweep sends what
 * is left over and forgets quiet sessions.
 */
import type { EngineCounters } from './engine-counters.js';
import type { Session } from './session.js';

export const QUEUE_DROP_REPORT_INTERVAL_MS = 10_000;

/** Why a queued (or to-be-queued) message was dropped; also the metric's `reason` label. */
export type QueueDropReason = 'queue_full' | 'queue_bytes_full' | 'queue_evicted';

/** Drops of one session since its previous report. */
export interface QueueDropReport {
  clientId: string;
  /** Epoch ms of the report. */
  at: number;
  /** Count by reason, only reasons that occurred. */
  dropped: Partial<Record<QueueDropReason, number>>;
}

interface Pending {
  reportedAt: number;
  dropped: Partial<Record<QueueDropReason, number>>;
  any: boolean;
}

export class QueueDropReports {
  readonly #counters: EngineCounters;
  readonly #report: (report: QueueDropReport) => void;
  readonly #pending = new Map<Session, Pending>();

  constructor(counters: EngineCounters, report: (report: QueueDropReport) => void) {
    this.#counters = counters;
    this.#report = report;
  }

  /** Sessions with a report pending or sent in the last interval (tests, leak checks). */
  get tracked(): number {
    return this.#pending.size;
  }

  drop(s: Session, reason: QueueDropReason, now: number): void {
    this.#counters.drop(reason);
    let p = this.#pending.get(s);
    if (p === undefined) {
      p = { reportedAt: Number.NEGATIVE_INFINITY, dropped: {}, any: false };
      this.#pending.set(s, p);
    }
    p.dropped[reason] = (p.dropped[reason] ?? 0) + 1;
    p.any = true;
    if (now - p.reportedAt >= QUEUE_DROP_REPORT_INTERVAL_MS) this.#send(s, p, now);
  }

  /** Sends reports whose interval is over; forgets sessions that dropped nothing in it. */
  sweep(now: number): void {
    for (const [s, p] of this.#pending) {
      if (now - p.reportedAt < QUEUE_DROP_REPORT_INTERVAL_MS) continue;
      if (p.any) this.#send(s, p, now);
      else this.#pending.delete(s);
    }
  }

  #send(s: Session, p: Pending, now: number): void {
    const dropped = p.dropped;
    p.dropped = {};
    p.any = false;
    p.reportedAt = now;
    this.#report({ clientId: s.clientId, at: now, dropped });
  }
}
