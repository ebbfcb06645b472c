import { useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { Confirm, type ConfirmRequest, ErrorNote, Section } from '../components.js';
import { time } from '../format.js';
import { useApi } from '../hooks.js';
import { canOperate } from '../session.js';

interface Campaign {
  id: string;
  name: string;
  state: 'draft' | 'running' | 'halted' | 'completed' | 'rolled-back';
  artifact: { version: string };
  currentWave: number | null;
  targetCount: number;
  haltReason: string | null;
  haltedBy: string | null;
  startedAt: string | null;
  updatedAt: string;
}
interface Wave {
  wave: number;
  percent: number;
  devices: number;
  states: Record<string, number | undefined>;
  failureRatio: number;
  gate: { maxFailureRatio: number; maxOfflineRatio: number; reportTimeoutMs: number };
}
interface Detail {
  campaign: Campaign;
  waves: Wave[];
}

const FAILED = ['failed', 'rolled-back', 'timed-out'];
// Notified but not heard from: the "silent" devices of a wave.
const SILENT = ['notified', 'queued'];
const WORKING = ['downloading', 'installing'];

function count(states: Record<string, number | undefined>, names: string[]): number {
  return names.reduce((n, s) => n + (states[s] ?? 0), 0);
}

export function Campaigns() {
  const [state, setState] = useState('');
  const list = useApi<{ items: Campaign[] }>(`/api/v1/campaigns${query({ state, limit: 100 })}`);
  const [selected, setSelected] = useState<string | null>(null);
  const detail = useApi<Detail>(selected ? `/api/v1/campaigns/${encodeURIComponent(selected)}` : null, 5000);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const operate = canOperate();
  const running = (list.data?.items ?? []).filter((c) => c.state === 'running');

  const halt = (c: Campaign) =>
    setConfirm({
      title: `HALT campaign ${c.name}`,
      effect: `Kill switch 3: no device of "${c.name}" is notified any more; jobs not started are withdrawn and devices downloading or installing are told to stop. Devices already updated stay on ${c.artifact.version}. You can resume or roll back afterwards.`,
      confirmLabel: 'HALT',
      reason: true,
      danger: true,
      run: (reason) => api('POST', `/api/v1/campaigns/${encodeURIComponent(c.id)}/halt`, { reason }),
    });
  const haltAll = () =>
    setConfirm({
      title: 'HALT every running campaign',
      effect: `Kill switch 3 for all ${running.length} running campaign(s): no device is notified any more, pending jobs are withdrawn, devices mid-update are told to stop.`,
      confirmLabel: 'HALT all',
      reason: true,
      danger: true,
      run: (reason) => api('POST', '/api/v1/killswitch/ota-halt', { reason }),
    });
  const resume = (c: Campaign) =>
    setConfirm({
      title: `Resume campaign ${c.name}`,
      effect: `"${c.name}" continues in wave ${c.currentWave ?? 1}: every unfinished job of the wave is sent again (new job ids).${c.haltedBy === 'system' ? ' It was halted by its health gate: resuming overrides that gate for this wave.' : ''}`,
      confirmLabel: 'Resume',
      reason: true,
      run: (reason) => api('POST', `/api/v1/campaigns/${encodeURIComponent(c.id)}/resume`, { reason }),
    });
  const rollback = (c: Campaign) =>
    setConfirm({
      title: `Roll back campaign ${c.name}`,
      effect: `Every device that installed ${c.artifact.version} in "${c.name}" gets a new campaign back to the version it ran before, started at once. "${c.name}" becomes rolled-back.`,
      confirmLabel: 'Roll back',
      reason: true,
      danger: true,
      run: (reason) => api('POST', `/api/v1/campaigns/${encodeURIComponent(c.id)}/rollback`, { reason }),
    });

  const d = detail.data;
  return (
    <div>
      <h1>Campaigns</h1>
      <div class="toolbar">
        <label class="field inline">
          State
          <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
            {['', 'draft', 'running', 'halted', 'completed', 'rolled-back'].map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
        <button type="button" class="danger" disabled={!operate || running.length === 0} onClick={haltAll}>
          HALT all running ({running.length})
        </button>
      </div>
      <ErrorNote error={list.error} />
      <table class="table" aria-label="Campaigns">
        <thead>
          <tr>
            <th scope="col">Campaign</th>
            <th scope="col">State</th>
            <th scope="col">Version</th>
            <th scope="col">Wave</th>
            <th scope="col">Devices</th>
            <th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.items ?? []).map((c) => (
            <tr key={c.id} class={selected === c.id ? 'current' : ''} data-testid={`campaign-${c.id}`}>
              <td>
                <button type="button" class="link" onClick={() => setSelected(c.id)}>
                  {c.name}
                </button>
              </td>
              <td>
                <span class={`badge-state ${c.state}`} data-testid="campaign-state">
                  {c.state}
                </span>
              </td>
              <td>{c.artifact.version}</td>
              <td>{c.currentWave ?? '–'}</td>
              <td>{c.targetCount}</td>
              <td>{time(c.updatedAt)}</td>
            </tr>
          ))}
          {(list.data?.items ?? []).length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                No campaigns.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {d && (
        <Section
          title={`${d.campaign.name}: ${d.campaign.state}`}
          actions={
            <>
              {d.campaign.state === 'running' && (
                <button type="button" class="danger" disabled={!operate} onClick={() => halt(d.campaign)}>
                  HALT
                </button>
              )}
              {d.campaign.state === 'halted' && (
                <button type="button" disabled={!operate} onClick={() => resume(d.campaign)}>
                  Resume
                </button>
              )}
              {(d.campaign.state === 'halted' || d.campaign.state === 'completed') && (
                <button type="button" class="danger" disabled={!operate} onClick={() => rollback(d.campaign)}>
                  Roll back
                </button>
              )}
            </>
          }
        >
          {d.campaign.haltReason && (
            <p>
              Halted by {d.campaign.haltedBy}: {d.campaign.haltReason}
            </p>
          )}
          <table class="table" aria-label="Waves">
            <thead>
              <tr>
                <th scope="col">Wave</th>
                <th scope="col">Devices</th>
                <th scope="col">Succeeded</th>
                <th scope="col">Failed</th>
                <th scope="col">Silent</th>
                <th scope="col">Working</th>
                <th scope="col">Not started / cancelled</th>
                <th scope="col">Health gate</th>
              </tr>
            </thead>
            <tbody>
              {d.waves.map((w) => {
                const failing = w.failureRatio > w.gate.maxFailureRatio;
                return (
                  <tr key={w.wave} class={d.campaign.currentWave === w.wave ? 'current' : ''}>
                    <td>
                      {w.wave} ({w.percent} %)
                    </td>
                    <td>{w.devices}</td>
                    <td>{count(w.states, ['succeeded'])}</td>
                    <td>{count(w.states, FAILED)}</td>
                    <td>{count(w.states, SILENT)}</td>
                    <td>{count(w.states, WORKING)}</td>
                    <td>{w.devices - count(w.states, ['succeeded', ...FAILED, ...SILENT, ...WORKING])}</td>
                    <td class={failing ? 'bad' : ''}>
                      {(w.failureRatio * 100).toFixed(1)} % failed / max{' '}
                      {(w.gate.maxFailureRatio * 100).toFixed(0)} % {failing ? '(failing)' : '(passing)'}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </Section>
      )}
      <Confirm
        request={confirm}
        onClose={() => setConfirm(null)}
        onDone={() => {
          list.reload();
          detail.reload();
        }}
      />
    </div>
  );
}
