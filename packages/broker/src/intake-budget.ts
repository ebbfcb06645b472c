/**
 * How many bytes the broker reads from its clients in one event-loop turn, all connections
 * together (issue 15: QoS 0 fan-in across cluster nodes).
 *
 * Why: libuv reads up to 32 × 64 KiB from every readable socket per turn. A few dozen flooding
 * publishers then fill a turn with tens of megabytes of PUBLISH, and a turn lasts seconds: every
 * other socket is serviced once per turn — a subscriber's socket is flushed once per turn (its
 * QoS 0 dropped as slow_consumer meanwhile), a cluster node reads its NATS connection once per
 * turn (and NATS closes it as a slow consumer), /metrics and heartbeats answer seconds late.
 *
 * With a budget, a connection that delivers data once the turn's budget is spent keeps that chunk
 * for later and stops reading (TCP pushes back on its client); at the end of the turn (check
 * phase) the budget is renewed and the waiting connections are served first, in the order they
 * stopped, so no connection starves and a turn reads about one budget. Without overload the
 * budget is never reached and nothing changes.
 */

/** What the budget asks of a waiting connection. */
export interface IntakeWaiter {
  /**
   * Its turn: framing the input kept while waiting, then reading again. Returns the bytes it
   * framed (charged to the new turn).
   */
  intakeResume(): number;
}

function renew(budget: IntakeBudget): void {
  budget.renew();
}

export class IntakeBudget {
  /** Bytes per turn; 0 = no budget (every chunk is framed when it arrives). */
  readonly perTurn: number;
  #remaining: number;
  #scheduled = false;
  /** Waiting connections, FIFO from `#head`. */
  #waiting: IntakeWaiter[] = [];
  #head = 0;
  /** Times a connection had to wait (metric: how often the budget was reached). */
  deferrals = 0;

  constructor(perTurn: number) {
    this.perTurn = perTurn;
    this.#remaining = perTurn;
  }

  /**
   * A chunk of `bytes` arrived. True: frame it now (charged to this turn). False: the turn's
   * budget is spent; the caller keeps the chunk, stops reading and `wait()`s.
   */
  admit(bytes: number): boolean {
    if (this.perTurn === 0) return true;
    if (this.#remaining <= 0) return false;
    this.#remaining -= bytes;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(renew, this);
    }
    return true;
  }

  /** `w` holds input and stopped reading: `intakeResume()` is called on a later turn. */
  wait(w: IntakeWaiter): void {
    this.deferrals++;
    this.#waiting.push(w);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(renew, this);
    }
  }

  /** Connections waiting for a turn (tests, diagnostics). */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /** @internal End of a turn (check phase): a new budget, the waiting connections served first. */
  renew(): void {
    this.#scheduled = false;
    let remaining = this.perTurn;
    const q = this.#waiting;
    while (remaining > 0 && this.#head < q.length) {
      const w = q[this.#head]!;
      q[this.#head++] = undefined as unknown as IntakeWaiter;
      remaining -= w.intakeResume();
    }
    if (this.#head === q.length) {
      q.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      q.splice(0, this.#head);
      this.#head = 0;
    }
    this.#remaining = remaining;
    // What the waiting used counts against the next turn too; the rest waits for it.
    if (remaining < this.perTurn || this.#head < q.length) {
      this.#scheduled = true;
      setImmediate(renew, this);
    }
  }
}
