import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Chart } from '../chart.js';
import { Confirm, type ConfirmRequest, ErrorNote, Section } from '../components.js';
import { duration, labelsOf, num, pct } from '../format.js';
import { useApi, useLive, useNow } from '../hooks.js';
import type { LiveState } from '../live.js';
import { canOperate } from '../session.js';

interface Listener {
  name: string;
  /** Authenticator names in order; null: no guard, anonymous clients. */
  authn: string[] | null;
  bypass: { until: string; reason: string; actor: string } | null;
}
interface Ban {
  scope: 'client_id' | 'address';
  key: string;
  remainingMs: number;
  until: string;
}

/** Sum of a series over the last `sec` seconds of live points (rates → counts). */
function recentTotal(s: LiveState, key: string, sec: number): number {
  const col = s.series[key];
  if (!col) return 0;
  const from = (s.t.at(-1) ?? 0) - sec;
  let total = 0;
  for (let i = s.t.length - 1; i >= 0 && s.t[i]! > from; i--) {
    const step = i > 0 ? s.t[i]! - s.t[i - 1]! : 1;
    total += (col[i] ?? 0) * step;
  }
  return total;
}

const REFUSAL_OUTCOMES = ['failure', 'error', 'negative_cache_hit', 'busy'];

export function Guard() {
  const s = useLive();
  const now = useNow();
  const listeners = useApi<{ listeners: Listener[] }>('/api/v1/listeners', 5000);
  const bans = useApi<{ bans: Ban[] }>('/api/v1/admission/flapping-bans', 5000);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const [ttl, setTtl] = useState('15m');
  const operate = canOperate();

  const windowSec = 300;
  const refusals = [
    ...labelsOf(s.series, 'refused').map((r) => ({ source: 'admission', reason: r, key: `refused:${r}` })),
    ...REFUSAL_OUTCOMES.filter((o) => s.series[`auth:${o}`]).map((o) => ({
      source: 'authentication',
      reason: o,
      key: `auth:${o}`,
    })),
  ];
  const decisions = recentTotal(s, 'authAll', windowSec);
  const hits = recentTotal(s, 'auth:cache_hit', windowSec);
  const negHits = recentTotal(s, 'auth:negative_cache_hit', windowSec);
  const stale = recentTotal(s, 'auth:stale_admit', windowSec);

  const bypass = (l: Listener) =>
    setConfirm({
      title: `Bypass authentication on ${l.name}`,
      effect: `For ${ttl}, clients on listener "${l.name}" are admitted WITHOUT asking the auth backends (${(l.authn ?? []).join(', ') || 'none'}); each is confined to its own topics. Authentication comes back by itself when the TTL ends, or now with "Restore".`,
      confirmLabel: `Bypass for ${ttl}`,
      reason: true,
      danger: true,
      run: (reason) =>
        api('POST', `/api/v1/listeners/${encodeURIComponent(l.name)}/bypass-authn`, { ttl, reason }),
    });
  const restore = (l: Listener) =>
    setConfirm({
      title: `Restore authentication on ${l.name}`,
      effect: `Clients connecting to "${l.name}" are authenticated by their backends again from now on.`,
      confirmLabel: 'Restore authentication',
      run: () => api('POST', `/api/v1/listeners/${encodeURIComponent(l.name)}/restore-authn`, {}),
    });
  const lift = (b: Ban) =>
    setConfirm({
      title: 'Lift flapping ban',
      effect: `The ${b.scope === 'client_id' ? 'client id' : 'address'} "${b.key}" may connect again at once instead of in ${duration(b.remainingMs)}.`,
      confirmLabel: 'Lift ban',
      run: () => api('POST', '/api/v1/admission/flapping-bans/lift', { scope: b.scope, key: b.key }),
    });

  return (
    <div>
      <h1>Guard</h1>
      <div class="grid2">
        <Section title="Break-glass: authentication bypass">
          <ErrorNote error={listeners.error} />
          <label class="field inline">
            Bypass TTL
            <select value={ttl} onChange={(e) => setTtl((e.target as HTMLSelectElement).value)}>
              {['5m', '15m', '30m', '1h', '2h'].map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
            </select>
          </label>
          <table class="table" aria-label="Listeners">
            <thead>
              <tr>
                <th scope="col">Listener</th>
                <th scope="col">Authentication</th>
                <th scope="col">Bypass</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {(listeners.data?.listeners ?? []).map((l) => (
                <tr key={l.name} data-testid={`listener-${l.name}`}>
                  <td>{l.name}</td>
                  <td>{l.authn === null ? 'none (anonymous)' : l.authn.join(' → ') || 'none'}</td>
                  <td data-testid={`bypass-${l.name}`}>
                    {l.bypass ? (
                      <span class="bad">
                        BYPASSED, ends in {duration(Date.parse(l.bypass.until) - now)} ({l.bypass.reason})
                      </span>
                    ) : (
                      'off'
                    )}
                  </td>
                  <td>
                    {l.bypass ? (
                      <button type="button" disabled={!operate} onClick={() => restore(l)}>
                        Restore
                      </button>
                    ) : (
                      <button
                        type="button"
                        class="danger"
                        disabled={!operate || !l.authn || l.authn.length === 0}
                        onClick={() => bypass(l)}
                      >
                        Bypass…
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
        <Section title="Auth cache (last 5 min)">
          <table class="table compact" aria-label="Auth cache">
            <tbody>
              <tr>
                <th scope="row">Decisions</th>
                <td>{num(decisions, 0)}</td>
              </tr>
              <tr>
                <th scope="row">Cache hits (allow)</th>
                <td data-testid="cache-hit-rate">{pct(decisions > 0 ? (hits / decisions) * 100 : null)}</td>
              </tr>
              <tr>
                <th scope="row">Negative cache hits (deny)</th>
                <td>{pct(decisions > 0 ? (negHits / decisions) * 100 : null)}</td>
              </tr>
              <tr>
                <th scope="row">Stale admits (backend down)</th>
                <td>{pct(decisions > 0 ? (stale / decisions) * 100 : null)}</td>
              </tr>
            </tbody>
          </table>
        </Section>
      </div>
      <Section title="Refusals by reason">
        <table class="table compact" aria-label="Refusals">
          <thead>
            <tr>
              <th scope="col">Stage</th>
              <th scope="col">Reason</th>
              <th scope="col">Now (/s)</th>
              <th scope="col">Last 5 min</th>
            </tr>
          </thead>
          <tbody>
            {refusals.map((r) => (
              <tr key={r.key}>
                <td>{r.source}</td>
                <td>{r.reason}</td>
                <td>{num(s.latest[r.key] ?? 0)}</td>
                <td>{num(recentTotal(s, r.key, windowSec), 0)}</td>
              </tr>
            ))}
            {refusals.length === 0 && (
              <tr>
                <td colSpan={4} class="muted">
                  No refusals recorded.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        <Chart
          title="Refusals"
          unit="/s"
          t={s.t}
          series={refusals.map((r) => ({ label: `${r.source}: ${r.reason}`, values: s.series[r.key]! }))}
          version={s.version}
        />
      </Section>
      <Section title="Flapping bans">
        <ErrorNote error={bans.error} />
        <table class="table" aria-label="Flapping bans">
          <thead>
            <tr>
              <th scope="col">Scope</th>
              <th scope="col">Key</th>
              <th scope="col">Ends in</th>
              <th scope="col">Action</th>
            </tr>
          </thead>
          <tbody>
            {(bans.data?.bans ?? []).map((b) => (
              <tr key={`${b.scope}:${b.key}`}>
                <td>{b.scope}</td>
                <td>{b.key}</td>
                <td>{duration(Date.parse(b.until) - now)}</td>
                <td>
                  <button type="button" disabled={!operate} onClick={() => lift(b)}>
                    Lift
                  </button>
                </td>
              </tr>
            ))}
            {(bans.data?.bans ?? []).length === 0 && (
              <tr>
                <td colSpan={4} class="muted">
                  No device is banned for flapping.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Section>
      <Confirm
        request={confirm}
        onClose={() => setConfirm(null)}
        onDone={() => {
          listeners.reload();
          bans.reload();
        }}
      />
    </div>
  );
}
