import { useCallback, useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { type LiveState, live, onLive } from './live.js';

/** The live state; the component re-renders on every delta. */
export function useLive(): LiveState {
  const [, setVersion] = useState(0);
  useEffect(() => onLive(() => setVersion(live().version)), []);
  return live();
}

/** The latest audit sequence number: changes whenever the API changed something. */
function useAuditSeq(): number {
  const [seq, setSeq] = useState(live().auditSeq);
  useEffect(() => onLive(() => setSeq(live().auditSeq)), []);
  return seq;
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/**
 * GET `path` now, again when it changes, when the audit log moves (someone changed something,
 * here or elsewhere) and every `everyMs` when given (state the audit log does not see).
 */
export function useApi<T>(path: string | null, everyMs?: number): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const seq = useAuditSeq();
  const reload = useCallback(() => setTick((n) => n + 1), []);
  useEffect(() => {
    if (everyMs === undefined) return;
    const timer = setInterval(reload, everyMs);
    return () => clearInterval(timer);
  }, [everyMs, reload]);
  useEffect(() => {
    if (path === null) return;
    let cancelled = false;
    setLoading(true);
    api<T>('GET', path).then(
      (d) => {
        if (cancelled) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e: Error) => {
        if (cancelled) return;
        setError(e.message);
        setLoading(false);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [path, tick, seq]);
  return { data, error, loading, reload };
}

/** Date.now(), refreshed every second (countdowns). */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}
