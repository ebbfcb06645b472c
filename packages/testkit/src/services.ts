import net from 'node:net';
import type { TestContext } from 'node:test';

/**
 * Is a TCP service (PostgreSQL, NATS, …) reachable? Tests that need one call `requireService`:
 * absent → the test is skipped with a clear message, except in CI (CI=true), where it fails.
 */
export function isReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export async function requireService(
  t: TestContext,
  name: string,
  host: string,
  port: number,
): Promise<boolean> {
  if (await isReachable(host, port)) return true;
  const msg = `${name} is not reachable at ${host}:${port}`;
  if (process.env.CI === 'true')
    throw new Error(`${msg} (CI=true: services must be up; .ci/run starts them)`);
  t.skip(`${msg}; start it to run this test`);
  return false;
}
