/** Test support: configs through the real config validator, a webhook receiver, polling. */

import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type IntegrationConfig, validateConfig } from '@breakwater/broker';

/** The `integration:` section as `breakwater up` would get it: defaults, checks, buffer file in `dir`. */
export function integrationConfig(dir: string, integration: Record<string, unknown>): IntegrationConfig {
  return validateConfig({ dataDir: dir, integration }, { baseDir: dir }).integration as IntegrationConfig;
}

/** Polls until `cond()` holds; fails with `what` after `ms` (a deadline, not a timing assertion). */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export interface HookMessage {
  id: number;
  rule: string;
  topic: string;
  publisher: string | null;
  receivedAt: string;
  payload: string;
  encoding: 'utf8' | 'base64';
}

export interface HookServer {
  url: string;
  /** up: 200; down: 503; reject: 400 when any payload contains BAD, else 200. */
  mode: 'up' | 'down' | 'reject';
  received: HookMessage[];
  requests: number;
  badSignatures: number;
  close(): Promise<void>;
}

/** A local webhook receiver that checks each request's HMAC signature. */
export async function startHookServer(secret: string): Promise<HookServer> {
  const state: HookServer = {
    url: '',
    mode: 'up',
    received: [],
    requests: 0,
    badSignatures: 0,
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.requests++;
      const body = Buffer.concat(chunks).toString('utf8');
      const sig = String(req.headers['x-breakwater-signature'] ?? '');
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig);
      const expected = m ? createHmac('sha256', secret).update(`${m[1]}.${body}`).digest('hex') : null;
      if (!m || expected !== m[2]) state.badSignatures++;
      if (state.mode === 'down') {
        res.writeHead(503).end('maintenance');
        return;
      }
      const parsed = JSON.parse(body) as { messages: HookMessage[] };
      if (state.mode === 'reject' && parsed.messages.some((x) => x.payload.includes('BAD'))) {
        res.writeHead(400).end('bad reading');
        return;
      }
      state.received.push(...parsed.messages);
      res.writeHead(200).end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
  state.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}
