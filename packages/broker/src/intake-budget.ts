/**
 * How long the broker spends reading its clients' input in one event-loop turn, all connections
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
 * stopped, so no connection starves and a turn spends about one budget on input. Without overload the
 * budget is never reached and nothing changes.
 */

/** What the budget asks of a waiting connection. */
export interface IntakeWaiter {
  /** Its turn: framing the input kept while waiting, then reading again. */
  intakeResume(): void;
}

function renew(budget: IntakeBudget): void {
  budget.renew();
}

export class IntakeBudget {
  /** Longest intake per turn, ms; 0 = no budget (every chunk is framed when it arrives). */
  readonly maxTurnMs: number;
  readonly #now: () => number;
  /** A turn is under way (a renew is scheduled for its end). */
  #inTurn = false;
  #turnStart = 0;
  #spent = false;
  /** Waiting connections, FIFO from `#head`. */
  #waiting: IntakeWaiter[] = [];
  #head = 0;
  /** Times a connection had to wait (how often the budget was reached). */
  deferrals = 0;

  constructor(maxTurnMs: number, now: () => number = performance.now.bind(performance)) {
    this.maxTurnMs = maxTurnMs;
    this.#now = now;
  }

  /**
   * Input arrived. True: handle it now. False: this turn's budget is spent; a connection keeps
   * the input, stops reading and `wait()`s; a cluster drops what it cannot hold back.
   */
  admit(): boolean {
    if (this.maxTurnMs === 0) return true;
    if (!this.#inTurn) {
      this.#startTurn(this.#now());
      return true;
    }
    if (this.#spent) return false;
    if (this.#now() - this.#turnStart < this.maxTurnMs) return true;
    this.#spent = true;
    return false;
  }

  /** `w` holds input and stopped reading: `intakeResume()` is called on a later turn. */
  wait(w: IntakeWaiter): void {
    this.deferrals++;
    this.#waiting.push(w);
    if (!this.#inTurn) this.#startTurn(this.#now());
  }

  /** Connections waiting for a turn (tests, diagnostics). */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  #startTurn(at: number): void {
    this.#inTurn = true;
    this.#spent = false;
    this.#turnStart = at;
    setImmediate(renew, this);
  }

  /**
   * @internal End of a turn (check phase): the waiting connections are served first, in the
   * order they stopped, within the next turn's budget; what is left waits for the turn after.
   */
  renew(): void {
    this.#inTurn = false;
    const q = this.#waiting;
    if (this.#head === q.length) return;
    const start = this.#now();
    this.#startTurn(start);
    while (this.#head < q.length) {
      const w = q[this.#head]!;
      q[this.#head++] = undefined as unknown as IntakeWaiter;
      w.intakeResume();
      if (this.#now() - start >= this.maxTurnMs) {
        this.#spent = true;
        break;
      }
    }
    if (this.#head === q.length) {
      q.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      q.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
