import { useState } from 'preact/hooks';
import { apiText } from '../api.js';
import { ErrorNote, Section } from '../components.js';
import { time } from '../format.js';
import { useApi } from '../hooks.js';

interface Run {
  run: string;
  scenario: string;
  title: string;
  cell: string | null;
  devices: number | null;
  passed: boolean;
  startedAt: string | null;
  hasHtml: boolean;
}
interface Report {
  scenario: { title: string; summary: string };
  passed: boolean;
  scores?: Record<string, unknown>;
  expectations?: Array<{
    name: string;
    compare: string;
    value: number | null;
    threshold: number;
    unit: string;
    pass: boolean;
    detail: string | null;
  }>;
}

export function Gamedays() {
  const runs = useApi<{ reportsDir: string; items: Run[] }>('/api/v1/gamedays?limit=200');
  const [open, setOpen] = useState<string | null>(null);
  const report = useApi<Report>(
    open === null ? null : `/api/v1/gamedays/report?run=${encodeURIComponent(open)}`,
  );
  const [htmlError, setHtmlError] = useState<string | null>(null);

  // The HTML report is fetched with the session token and handed over as a file: a plain link
  // could not carry the Authorization header.
  const download = async (run: string) => {
    try {
      const html = await apiText(`/api/v1/gamedays/report.html?run=${encodeURIComponent(run)}`);
      const url = URL.createObjectURL(new Blob([html], { type: 'text/html' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `${run.replaceAll('/', '_')}.html`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setHtmlError((e as Error).message);
    }
  };

  return (
    <div>
      <h1>Game days</h1>
      <ErrorNote error={runs.error ?? htmlError} />
      <p class="muted">Reports from {runs.data?.reportsDir ?? '…'} (breakwater gameday run … --report).</p>
      <table class="table" aria-label="Game-day runs">
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Scenario</th>
            <th scope="col">Cell</th>
            <th scope="col">Devices</th>
            <th scope="col">Result</th>
            <th scope="col">Started</th>
            <th scope="col">Report</th>
          </tr>
        </thead>
        <tbody>
          {(runs.data?.items ?? []).map((r) => (
            <tr key={r.run} class={open === r.run ? 'current' : ''}>
              <td>
                <button type="button" class="link" onClick={() => setOpen(r.run)}>
                  {r.run}
                </button>
              </td>
              <td>{r.title || r.scenario}</td>
              <td>{r.cell ?? '–'}</td>
              <td>{r.devices ?? '–'}</td>
              <td class={r.passed ? 'good' : 'bad'}>{r.passed ? 'PASSED' : 'FAILED'}</td>
              <td>{time(r.startedAt)}</td>
              <td>
                {r.hasHtml && (
                  <button type="button" onClick={() => void download(r.run)}>
                    Download report.html
                  </button>
                )}
              </td>
            </tr>
          ))}
          {(runs.data?.items ?? []).length === 0 && (
            <tr>
              <td colSpan={7} class="muted">
                No game-day reports yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {open && report.data && (
        <Section title={`${report.data.scenario.title}: ${report.data.passed ? 'PASSED' : 'FAILED'}`}>
          <p>{report.data.scenario.summary}</p>
          <h3>Expectations</h3>
          <ul class="timeline">
            {(report.data.expectations ?? []).map((e, i) => (
              <li key={i} class={e.pass ? 'good' : 'bad'}>
                {e.pass ? 'pass' : 'FAIL'}: {e.name}: {e.value ?? '–'} {e.unit} ({e.compare} {e.threshold})
                {e.detail ? `, ${e.detail}` : ''}
              </li>
            ))}
          </ul>
          <details>
            <summary>Scores (report.json)</summary>
            <pre>{JSON.stringify(report.data.scores ?? {}, null, 2)}</pre>
          </details>
        </Section>
      )}
    </div>
  );
}
