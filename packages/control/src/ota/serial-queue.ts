import type { Logger } from 'pino';

/**
 * Runs the engine's operations one at a time, in call order, so a device report, a timer and an
 * operator's halt never interleave their reads and writes of campaign state. A failed operation
 * rejects its own caller and is logged; it does not stop the queue.
 */
export class SerialQueue {
  readonly #logger: Logger | null;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(logger: Logger | null) {
    this.#logger = logger;
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch((err: unknown) => {
      this.#logger?.error({ err }, 'ota engine operation failed');
    });
    return run;
  }

  /** Resolves when every operation queued so far has run. */
  idle(): Promise<void> {
    return this.#tail.then(
      () => undefined,
      () => undefined,
    );
  }
}
