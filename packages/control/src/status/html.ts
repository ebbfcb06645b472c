/**
 * `/status` as one self-contained HTML document: inline CSS, no scripts, no fonts, no external
 * requests (a status page must render when everything else is down, and must not leak visitors
 * to third parties). Every dynamic string goes through `esc`.
 */
import type { ComponentState, StatusPage } from './model.js';

export function esc(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const label: Record<ComponentState, string> = {
  operational: 'Operational',
  degraded: 'Degraded performance',
  outage: 'Major outage',
};

const banner: Record<ComponentState, string> = {
  operational: 'All systems operational',
  degraded: 'Some systems are degraded',
  outage: 'Major outage in progress',
};

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
main{max-width:860px;margin:0 auto;padding:24px}
h1{font-size:1.5rem;margin:0 0 16px}h2{font-size:1.15rem;margin:28px 0 10px}
.banner{padding:16px;border-radius:8px;color:#fff;font-weight:600;font-size:1.1rem}
.operational{background:#1f9d55}.degraded{background:#d69e2e}.outage{background:#c53030}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px;margin:10px 0}
.row{display:flex;justify-content:space-between;align-items:center}
.pill{font-size:.85rem;padding:2px 8px;border-radius:10px;color:#fff}
.bars{display:flex;gap:1px;margin-top:8px}.bars span{flex:1;height:24px;border-radius:1px}
.muted{color:#5b6472;font-size:.85rem}
.update{border-left:3px solid #dde1e7;padding:4px 10px;margin:8px 0}
.update b{text-transform:capitalize}
ul.days{list-style:none;padding:0}ul.days li{padding:4px 0;border-bottom:1px solid #eceff3}
`;

export function statusHtml(page: StatusPage, title = 'Breakwater status'): string {
  const components = page.components
    .map(
      (c) => `<div class="card" data-component="${esc(c.id)}">
<div class="row"><span>${esc(c.name)}</span><span class="pill ${c.state}">${label[c.state]}</span></div>
<div class="bars" aria-label="last ${c.history.length} days, oldest first">${[...c.history]
        .reverse()
        .map(
          (s, n) =>
            `<span class="${s}" title="${esc(page.history[c.history.length - 1 - n]?.date ?? '')}: ${label[s]}"></span>`,
        )
        .join('')}</div>
<div class="row muted"><span>${c.history.length} days ago</span><span>today</span></div>
</div>`,
    )
    .join('\n');
  const incidents = page.activeIncidents.length
    ? page.activeIncidents
        .map(
          (i) => `<div class="card incident" data-incident="${esc(i.id)}">
<h3>${esc(i.title)}</h3>
<div class="muted">${esc(i.id)} · affects ${esc(i.components.join(', '))} · since ${esc(i.startedAt)}</div>
${i.updates.map((u) => `<div class="update"><b>${esc(u.status)}</b> <span class="muted">${esc(u.at)}</span><p>${esc(u.message)}</p></div>`).join('\n')}
</div>`,
        )
        .join('\n')
    : '<p class="muted">No active incidents.</p>';
  const past = page.history
    .filter((d) => d.incidents.length > 0)
    .map(
      (d) =>
        `<li><span class="muted">${esc(d.date)}</span> ${d.incidents.map((i) => `${esc(i.id)} ${esc(i.title)}`).join('; ')}</li>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>
<div class="banner ${page.overall}" id="overall">${banner[page.overall]}</div>
<h2>Active incidents</h2>
${incidents}
<h2>Components</h2>
${components}
<h2>Incident history (${page.history.length} days)</h2>
${past ? `<ul class="days">${past}</ul>` : '<p class="muted">No incidents.</p>'}
<p class="muted">Updated ${esc(page.generatedAt)} · also as <a href="/status.json">JSON</a></p>
</main>
</body>
</html>
`;
}
