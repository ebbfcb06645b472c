import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Confirm, type ConfirmRequest, ErrorNote, Section } from '../components.js';
import { duration, time } from '../format.js';
import { useApi, useLive } from '../hooks.js';
import { canOperate } from '../session.js';

interface Incident {
  id: number;
  ref: string;
  type: string;
  severity: string;
  title: string;
  state: 'detected' | 'acknowledged' | 'mitigated' | 'resolved';
  commander: string | null;
  runbook: { slug: string; title: string | null };
  startedAt: string;
  durations: { ttdMs: number | null; ttaMs: number | null; ttmMs: number | null; ttrMs: number | null };
}
interface TimelineItem {
  at: string;
  kind: string;
  source: string;
  actor: string;
  text: string;
}
interface IncidentDetail {
  incident: Incident;
  timeline: TimelineItem[];
}

const NEXT: Record<string, { path: string; label: string; effect: string } | undefined> = {
  detected: { path: 'ack', label: 'Acknowledge', effect: 'You become the commander; TTA stops.' },
  acknowledged: { path: 'mitigate', label: 'Mark mitigated', effect: 'TTM stops: the impact is contained.' },
  mitigated: {
    path: 'resolve',
    label: 'Resolve',
    effect: 'TTR stops; the incident closes and leaves the status page.',
  },
};

export function Incidents() {
  const s = useLive();
  const incidents = useApi<{ items: Incident[] }>('/api/v1/incidents?limit=50');
  const [selected, setSelected] = useState<number | null>(null);
  const [runbook, setRunbook] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<ConfirmRequest | null>(null);
  const detail = useApi<IncidentDetail>(selected === null ? null : `/api/v1/incidents/${selected}`);
  const postmortem = useApi<{ markdown: string }>(
    selected === null ? null : `/api/v1/incidents/${selected}/postmortem?format=json`,
  );
  const book = useApi<{ title: string; markdown: string }>(
    runbook === null ? null : `/api/v1/runbooks/${encodeURIComponent(runbook)}`,
  );
  const operate = canOperate();
  const inc = detail.data?.incident;
  const next = inc ? NEXT[inc.state] : undefined;

  return (
    <div>
      <h1>Alerts and incidents</h1>
      <Section title={`Alerts (${s.alerts.length})`}>
        <table class="table" aria-label="Active alerts">
          <thead>
            <tr>
              <th scope="col">Rule</th>
              <th scope="col">State</th>
              <th scope="col">Severity</th>
              <th scope="col">Summary</th>
              <th scope="col">Since</th>
              <th scope="col">Runbook</th>
            </tr>
          </thead>
          <tbody>
            {s.alerts.map((a) => (
              <tr key={`${a.ruleId}${JSON.stringify(a.labels)}`} class={a.state === 'firing' ? 'firing' : ''}>
                <td>{a.ruleId}</td>
                <td>{a.state}</td>
                <td>{a.severity}</td>
                <td>{a.summary}</td>
                <td>{time(a.startedAt)}</td>
                <td>
                  {a.runbook && (
                    <button type="button" class="link" onClick={() => setRunbook(a.runbook)}>
                      {a.runbook}
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {s.alerts.length === 0 && (
              <tr>
                <td colSpan={6} class="muted">
                  Nothing pending or firing.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Section>
      {runbook && (
        <Section
          title={`Runbook: ${book.data?.title ?? runbook}`}
          actions={
            <button type="button" onClick={() => setRunbook(null)}>
              Close
            </button>
          }
        >
          <ErrorNote error={book.error} />
          <pre class="markdown">{book.data?.markdown ?? '…'}</pre>
        </Section>
      )}
      <div class="grid2">
        <Section title="Incidents">
          <ErrorNote error={incidents.error} />
          <table class="table" aria-label="Incidents">
            <thead>
              <tr>
                <th scope="col">Ref</th>
                <th scope="col">Title</th>
                <th scope="col">Severity</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {(incidents.data?.items ?? []).map((i) => (
                <tr key={i.id} class={selected === i.id ? 'current' : ''}>
                  <td>
                    <button type="button" class="link" onClick={() => setSelected(i.id)}>
                      {i.ref}
                    </button>
                  </td>
                  <td>{i.title}</td>
                  <td>{i.severity}</td>
                  <td>{i.state}</td>
                </tr>
              ))}
              {(incidents.data?.items ?? []).length === 0 && (
                <tr>
                  <td colSpan={4} class="muted">
                    No incidents.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </Section>
        <Section title="Status page preview">
          <iframe class="status-preview" src="/status" title="Public status page preview" />
        </Section>
      </div>
      {inc && (
        <Section
          title={`${inc.ref}: ${inc.title}`}
          actions={
            next && (
              <button
                type="button"
                disabled={!operate}
                onClick={() =>
                  setConfirm({
                    title: `${next.label} ${inc.ref}`,
                    effect: next.effect,
                    confirmLabel: next.label,
                    run: () => api('POST', `/api/v1/incidents/${inc.id}/${next.path}`, {}),
                  })
                }
              >
                {next.label}
              </button>
            )
          }
        >
          <dl class="kv">
            <dt>State</dt>
            <dd>{inc.state}</dd>
            <dt>Commander</dt>
            <dd>{inc.commander ?? '–'}</dd>
            <dt>Runbook</dt>
            <dd>
              <button type="button" class="link" onClick={() => setRunbook(inc.runbook.slug)}>
                {inc.runbook.title ?? inc.runbook.slug}
              </button>
            </dd>
            <dt>TTD / TTA / TTM / TTR</dt>
            <dd>
              {duration(inc.durations.ttdMs)} / {duration(inc.durations.ttaMs)} /{' '}
              {duration(inc.durations.ttmMs)} / {duration(inc.durations.ttrMs)}
            </dd>
          </dl>
          <h3>Timeline</h3>
          <ul class="timeline">
            {(detail.data?.timeline ?? []).map((t, i) => (
              <li key={i} class={`kind-${t.kind}`}>
                <time>{time(t.at)}</time> <span class="kind">{t.kind}</span> {t.text}{' '}
                <span class="muted">({t.actor})</span>
              </li>
            ))}
          </ul>
          <details>
            <summary>Postmortem draft (markdown, from the incident record)</summary>
            <pre class="markdown">{postmortem.data?.markdown ?? '…'}</pre>
          </details>
        </Section>
      )}
      <Confirm
        request={confirm}
        onClose={() => setConfirm(null)}
        onDone={() => {
          detail.reload();
          incidents.reload();
        }}
      />
    </div>
  );
}
