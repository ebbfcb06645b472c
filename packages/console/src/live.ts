/**
 * The tab's one live stream (GET /api/v1/console/stream, Server-Sent Events): a `snapshot` with
 * the last hour of every console series, then a `delta` per second. Read with fetch (not
 * EventSource) so the session token travels in the Authorization header, never in a URL.
 *
 * When the stream ends or goes quiet (no delta for 5 s) the badge turns RECONNECTING and the
 * client reconnects with backoff (0.5 s doubling to 5 s); the new snapshot replaces the old
 * state, so nothing is missed or double-counted across a broker restart.
 */
import { session, setSession } from './session.js';

export type LinkState = 'connecting' | 'live' | 'reconnecting';

export interface ConsoleAlert {
  ruleId: string;
  state: 'pending' | 'firing';
  labels: Record<string, string>;
  value: number;
  threshold: number;
  summary: string;
  startedAt: string;
  firedAt: string | null;
  severity: string;
  runbook: string | null;
}

export interface Thresholds {
  authFailPct: number | null;
  backendP99Sec: number | null;
  fdRatio: number | null;
  attemptsPerSec: number | null;
  msgInPerSec: number | null;
}

export interface LiveState {
  link: LinkState;
  /** Seconds since epoch (uPlot's x unit), oldest first. */
  t: number[];
  series: Record<string, Array<number | null>>;
  latest: Record<string, number>;
  thresholds: Thresholds;
  alerts: ConsoleAlert[];
  auditSeq: number;
  /** Bumped on every change: components compare it to decide to redraw. */
  version: number;
}

// An hour of live seconds on top of the hour of 10 s buckets from the snapshot.
const MAX_POINTS = 360 + 3600;
const QUIET_MS = 5000;

const state: LiveState = {
  link: 'connecting',
  t: [],
  series: {},
  latest: {},
  thresholds: {
    authFailPct: null,
    backendP99Sec: null,
    fdRatio: null,
    attemptsPerSec: null,
    msgInPerSec: null,
  },
  alerts: [],
  auditSeq: 0,
  version: 0,
};
const listeners = new Set<() => void>();

export function live(): LiveState {
  return state;
}

export function onLive(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed(): void {
  state.version++;
  for (const l of listeners) l();
}

function setLink(link: LinkState): void {
  if (state.link === link) return;
  state.link = link;
  changed();
}

interface Snapshot {
  live: { t: number[]; series: Record<string, Array<number | null>> };
  thresholds: Thresholds;
  alerts: ConsoleAlert[];
  auditSeq: number;
}

interface Delta {
  at: number;
  values: Record<string, number>;
  alerts?: ConsoleAlert[];
  auditSeq?: number;
}

function applySnapshot(s: Snapshot): void {
  state.t = s.live.t.map((ms) => ms / 1000);
  state.series = s.live.series;
  state.latest = {};
  for (const [k, v] of Object.entries(s.live.series)) {
    for (let i = v.length - 1; i >= 0; i--) {
      if (v[i] !== null) {
        state.latest[k] = v[i]!;
        break;
      }
    }
  }
  state.thresholds = s.thresholds;
  state.alerts = s.alerts;
  state.auditSeq = s.auditSeq;
  state.link = 'live';
  changed();
}

function applyDelta(d: Delta): void {
  const n = state.t.length;
  const at = d.at / 1000;
  if (n === 0 || at > state.t[n - 1]!) {
    state.t.push(at);
    for (const [key, column] of Object.entries(state.series)) column.push(d.values[key] ?? null);
    for (const [key, v] of Object.entries(d.values)) {
      if (!(key in state.series)) {
        const column: Array<number | null> = new Array(n).fill(null);
        column.push(v);
        state.series[key] = column;
      }
    }
    if (state.t.length > MAX_POINTS) {
      const drop = state.t.length - MAX_POINTS;
      state.t.splice(0, drop);
      for (const column of Object.values(state.series)) column.splice(0, drop);
    }
  }
  state.latest = d.values;
  if (d.alerts) state.alerts = d.alerts;
  if (d.auditSeq !== undefined) state.auditSeq = d.auditSeq;
  state.link = 'live';
  changed();
}

let running: AbortController | null = null;

/** Starts (or restarts) the stream for the current session. */
export function startLive(): void {
  stopLive();
  const controller = new AbortController();
  running = controller;
  void loop(controller);
}

export function stopLive(): void {
  running?.abort();
  running = null;
}

async function loop(controller: AbortController): Promise<void> {
  let backoff = 500;
  while (!controller.signal.aborted) {
    const s = session();
    if (!s) return;
    try {
      const res = await fetch('/api/v1/console/stream', {
        headers: { authorization: `Bearer ${s.token}`, accept: 'text/event-stream' },
        signal: controller.signal,
      });
      if (res.status === 401) {
        setSession(null);
        return;
      }
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      backoff = 500;
      await readEvents(res.body, controller);
    } catch {
      // network error, server gone, or the quiet watchdog: reconnect below
    }
    if (controller.signal.aborted) return;
    setLink('reconnecting');
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 5000);
  }
}

async function readEvents(body: ReadableStream<Uint8Array>, controller: AbortController): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let watchdog = 0;
  const arm = () => {
    clearTimeout(watchdog);
    watchdog = window.setTimeout(() => void reader.cancel(), QUIET_MS);
  };
  const stop = () => void reader.cancel();
  controller.signal.addEventListener('abort', stop);
  arm();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      arm();
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
  } finally {
    clearTimeout(watchdog);
    controller.signal.removeEventListener('abort', stop);
  }
}

function dispatch(block: string): void {
  let event = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (data === '') return;
  if (event === 'snapshot') applySnapshot(JSON.parse(data) as Snapshot);
  else if (event === 'delta') applyDelta(JSON.parse(data) as Delta);
}
