import { useState } from 'preact/hooks';
import { Chart, type ChartSeries } from '../chart.js';
import { Stat } from '../components.js';
import { labelsOf, num, pct, sumPrefix } from '../format.js';
import { useLive } from '../hooks.js';
import type { LiveState } from '../live.js';

const BREAKER = ['closed', 'half-open', 'open'];

function column(s: LiveState, key: string): Array<number | null> {
  return s.series[key] ?? new Array(s.t.length).fill(null);
}

function byLabel(s: LiveState, prefix: string): ChartSeries[] {
  return labelsOf(s.series, prefix).map((label) => ({ label, values: column(s, `${prefix}:${label}`) }));
}

/** authFail / authAll per point, in percent (null where nothing was decided). */
function ratioPct(s: LiveState, part: string, whole: string): Array<number | null> {
  const a = column(s, part);
  const b = column(s, whole);
  return b.map((d, i) => (d === null || d <= 0 ? null : ((a[i] ?? 0) / d) * 100));
}

export function Overview() {
  const s = useLive();
  const l = s.latest;
  const th = s.thresholds;
  const authPct = l.authAll && l.authAll > 0 ? ((l.authFail ?? 0) / l.authAll) * 100 : null;
  const fdLimitLine = th.fdRatio !== null && l.fdMax ? th.fdRatio * l.fdMax : null;
  const backends = labelsOf(s.latest, 'breaker');
  const drops = sumPrefix(l, 'drops') ?? 0;
  const [windowSec, setWindowSec] = useState(900);
  return (
    <div>
      <div class="page-head">
        <h1>Overview</h1>
        <label class="field inline">
          Chart window
          <select
            value={windowSec}
            onChange={(e) => setWindowSec(Number((e.target as HTMLSelectElement).value))}
          >
            <option value={300}>5 min</option>
            <option value={900}>15 min</option>
            <option value={3600}>1 h</option>
          </select>
        </label>
      </div>
      <div class="stats">
        <Stat label="Connected devices" value={num(l.connections ?? 0, 0)} testid="stat-connections" />
        <Stat label="Connect attempts/s" value={num(sumPrefix(l, 'attempts') ?? 0)} testid="stat-attempts" />
        <Stat
          label="Auth failures"
          value={pct(authPct)}
          testid="stat-auth-fail"
          warn={authPct !== null && th.authFailPct !== null && authPct > th.authFailPct}
        />
        <Stat
          label="Auth backend p99"
          value={l.backendP99 === undefined ? '–' : `${num(l.backendP99 * 1000, 0)} ms`}
          testid="stat-p99"
        />
        <Stat
          label="FDs open / limit"
          value={`${num(l.fds ?? null, 0)} / ${num(l.fdMax ?? null, 0)}`}
          testid="stat-fds"
          warn={fdLimitLine !== null && (l.fds ?? 0) > fdLimitLine}
        />
        <Stat label="Messages in/s" value={num(l.msgIn ?? 0)} testid="stat-msg-in" />
        <Stat label="Messages out/s" value={num(l.msgOut ?? 0)} testid="stat-msg-out" />
        <Stat label="Drops/s" value={num(drops)} testid="stat-drops" warn={drops > 0} />
      </div>
      {backends.length > 0 && (
        <table class="table compact" aria-label="Auth backends">
          <thead>
            <tr>
              <th scope="col">Auth backend</th>
              <th scope="col">Breaker</th>
              <th scope="col">Concurrency limit</th>
              <th scope="col">In flight</th>
              <th scope="col">Waiting</th>
            </tr>
          </thead>
          <tbody>
            {backends.map((b) => (
              <tr key={b}>
                <td>{b}</td>
                <td class={(l[`breaker:${b}`] ?? 0) >= 2 ? 'bad' : ''}>
                  {BREAKER[l[`breaker:${b}`] ?? 0] ?? num(l[`breaker:${b}`])}
                </td>
                <td>{num(l[`limit:${b}`], 0)}</td>
                <td>{num(l[`inflight:${b}`] ?? 0, 0)}</td>
                <td>{num(l[`waiting:${b}`] ?? 0, 0)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="charts">
        <Chart
          title="Connect attempts per listener"
          unit="/s"
          t={s.t}
          series={byLabel(s, 'attempts')}
          threshold={th.attemptsPerSec === null ? null : { value: th.attemptsPerSec, label: 'burst alert' }}
          version={s.version}
          windowSec={windowSec}
        />
        <Chart
          title="Auth failure ratio"
          unit="%"
          t={s.t}
          series={[{ label: 'failed', values: ratioPct(s, 'authFail', 'authAll') }]}
          threshold={th.authFailPct === null ? null : { value: th.authFailPct, label: 'alert' }}
          version={s.version}
          windowSec={windowSec}
        />
        <Chart
          title="Auth backend latency p99"
          unit="s"
          t={s.t}
          series={s.series.backendP99 ? [{ label: 'p99', values: column(s, 'backendP99') }] : []}
          threshold={th.backendP99Sec === null ? null : { value: th.backendP99Sec, label: 'alert' }}
          version={s.version}
          windowSec={windowSec}
        />
        <Chart
          title="Connected devices"
          unit="connections"
          t={s.t}
          series={[{ label: 'connected', values: column(s, 'connections') }]}
          version={s.version}
          windowSec={windowSec}
        />
        <Chart
          title="File descriptors vs limit"
          unit="FDs"
          t={s.t}
          series={[
            { label: 'open', values: column(s, 'fds') },
            { label: 'sockets', values: column(s, 'sockets') },
          ]}
          threshold={
            fdLimitLine === null
              ? null
              : { value: fdLimitLine, label: `alert (${(th.fdRatio! * 100).toFixed(0)} % of limit)` }
          }
          version={s.version}
          windowSec={windowSec}
        />
        <Chart
          title="Messages"
          unit="/s"
          t={s.t}
          series={[
            { label: 'in', values: column(s, 'msgIn') },
            { label: 'out', values: column(s, 'msgOut') },
          ]}
          threshold={th.msgInPerSec === null ? null : { value: th.msgInPerSec, label: 'inbound budget' }}
          version={s.version}
          windowSec={windowSec}
        />
        <Chart
          title="Drops by reason"
          unit="/s"
          t={s.t}
          series={byLabel(s, 'drops')}
          version={s.version}
          windowSec={windowSec}
        />
      </div>
    </div>
  );
}
