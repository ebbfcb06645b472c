import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import type { BrokerMetrics } from '@breakwater/broker';
import type { TestBrokerOptions } from '@breakwater/testkit';

/**
 * The broker a black-box suite (interop, conformance, fuzz) runs against.
 *
 * By default a fresh Breakwater from `startBroker()` on port 0. With
 * `BW_TEST_TARGET=mqtt://host:port` set, an external broker instead (e.g. the reference Mosquitto
 * on 127.0.0.1:1883), so the same suites can be validated against a known-good implementation
 * before they judge ours. An external broker is shared: tests must use `uniqueId()` for client
 * ids and topic prefixes.
 */
export interface Target {
  /** `breakwater` = in-process broker started for this test; `external` = BW_TEST_TARGET. */
  kind: 'breakwater' | 'external';
  url: string;
  host: string;
  port: number;
  /** Breakwater only: server-side sockets currently open on the listener. */
  openSockets?: () => number;
  /** Breakwater only. */
  metrics?: BrokerMetrics;
  /**
   * Let `ms` of broker time pass: advances the in-process broker's FakeClock when the target was
   * started with `{ fakeClock: true }`, otherwise really waits (an external broker's clock is real).
   */
  elapse(ms: number): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface TargetOptions extends TestBrokerOptions {
  /** In-process Breakwater only: drive its clock from the test (see `Target.elapse`). */
  fakeClock?: boolean;
}

const realElapse = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The external target's URL, if the suites were asked to run against one. */
export function externalTarget(): string | undefined {
  const v = process.env.BW_TEST_TARGET;
  return v && v.length > 0 ? v : undefined;
}

/**
 * Start (or point at) the broker under test. When `t` is given its teardown is registered on it.
 * `options` tune the in-process Breakwater and are ignored for an external target: tests that
 * depend on a limit read the value the broker announces (CONNACK properties) instead.
 */
export async function target(t?: TestContext, options: TargetOptions = {}): Promise<Target> {
  const external = externalTarget();
  let result: Target;
  if (external) {
    const u = new URL(external);
    if (u.protocol !== 'mqtt:') throw new Error(`BW_TEST_TARGET must be an mqtt:// URL, got ${external}`);
    const host = u.hostname;
    const port = u.port ? Number(u.port) : 1883;
    result = {
      kind: 'external',
      url: `mqtt://${host}:${port}`,
      host,
      port,
      elapse: realElapse,
      close: async () => {},
    };
  } else {
    // Imported lazily so that an external run does not need the engine to load at all.
    const { startBroker, FakeClock } = await import('@breakwater/testkit');
    const { fakeClock, ...brokerOptions } = options;
    const clock = fakeClock ? new FakeClock(Date.now()) : undefined;
    const b = await startBroker(clock ? { ...brokerOptions, clock } : brokerOptions);
    let closing: Promise<void> | undefined;
    result = {
      kind: 'breakwater',
      url: b.url,
      host: '127.0.0.1',
      port: b.port,
      openSockets: b.openSockets,
      metrics: b.metrics,
      elapse: clock
        ? async (ms) => {
            clock.advance(ms);
          }
        : realElapse,
      close: () => {
        closing ??= b.close();
        return closing;
      },
    };
  }
  if (t) t.after(() => result.close());
  return result;
}

/** A client id / topic segment unique across runs, safe on a shared broker. */
export function uniqueId(label = 'bw'): string {
  return `${label}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

const programCache = new Map<string, boolean>();

function programWorks(command: string, args: readonly string[]): boolean {
  const key = `${command} ${args.join(' ')}`;
  let ok = programCache.get(key);
  if (ok === undefined) {
    const r = spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 });
    ok = r.error === undefined && r.status === 0;
    programCache.set(key, ok);
  }
  return ok;
}

/**
 * Does an external program the test needs work here? Absent → skip with a clear message, except
 * under CI=true, where a missing program is a failure (scripts/setup-test.sh installs them). Same
 * policy as testkit's `requireService`. `probe` is a command line that exits 0 when it is usable.
 */
export function requireProgram(
  t: TestContext,
  name: string,
  probe: readonly [string, ...string[]],
  installHint: string,
): boolean {
  const [command, ...args] = probe;
  if (programWorks(command, args)) return true;
  const msg = `${name} is not available (\`${probe.join(' ')}\` failed)`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: ${installHint})`);
  t.skip(`${msg}; ${installHint} to run this test`);
  return false;
}

/**
 * The spec says X, the reference Mosquitto 2.0.11 does Y: when the suite runs against an external
 * broker, mark the test TODO (it still runs and reports, but does not fail the run). Against
 * Breakwater the test is strict. `why` names the deviation so the report says what was seen.
 */
export function knownExternalDeviation(t: TestContext, broker: Target, why: string): void {
  if (broker.kind === 'external') t.todo(`known deviation of the external reference broker: ${why}`);
}
