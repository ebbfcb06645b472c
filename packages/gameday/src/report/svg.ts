/**
 * Inline SVG line charts for report.html: no script, no external asset, readable when printed.
 * One chart = a few series over the run's seconds, the fault window shaded, optional horizontal
 * reference lines (a cap, a threshold).
 */

export interface ChartSeries {
  name: string;
  color: string;
  values: (number | null)[];
  /** Dashed line (secondary series). */
  dashed?: boolean;
}

export interface ChartMarker {
  t: number;
  label: string;
  kind: 'fault' | 'repair' | 'action' | 'alert';
}

export interface ChartOptions {
  title: string;
  unit: string;
  /** x of each value (seconds). */
  t: number[];
  series: ChartSeries[];
  markers: ChartMarker[];
  /** Shaded interval (fault → repair). */
  band?: { from: number; to: number } | null;
  references?: { value: number; label: string; color: string }[];
  width?: number;
  height?: number;
}

export function escapeXml(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/**
 * 1, 2, (2.5,) 5 × 10^k at or above `x` (at least 1: counts are whole). 2.5 only from 25 up, so
 * grid labels stay whole numbers while an axis does not overshoot its data by 2.5×.
 */
export function niceCeil(x: number): number {
  if (!(x > 1)) return 1;
  const k = 10 ** Math.floor(Math.log10(x));
  for (const m of k >= 10 ? [1, 2, 2.5, 5, 10] : [1, 2, 5, 10]) if (m * k >= x) return m * k;
  return 10 * k;
}

function shortNumber(v: number): string {
  if (Math.abs(v) >= 1_000_000) return `${+(v / 1_000_000).toFixed(1)}M`;
  if (Math.abs(v) >= 10_000) return `${+(v / 1000).toFixed(0)}k`;
  if (Math.abs(v) >= 1_000) return `${+(v / 1000).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

const markerColor: Record<ChartMarker['kind'], string> = {
  fault: '#c62828',
  repair: '#2e7d32',
  action: '#6a1b9a',
  alert: '#ef6c00',
};

export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 920;
  const H = o.height ?? 240;
  const left = 64;
  const right = 16;
  // Legend beside the title when both fit, else on a line of its own below it.
  const legendWidth = o.series.reduce((a, s) => a + 26 + s.name.length * 6.3, 0);
  const legendBelow = left + o.title.length * 7.6 + 24 + legendWidth > W - right;
  const legendY = legendBelow ? 36 : 14;
  const top = legendBelow ? 52 : 34;
  const bottom = 34;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const tMax = Math.max(1, ...o.t);
  const tMin = 0;
  let vMax = 0;
  for (const s of o.series)
    for (const v of s.values) if (v !== null && Number.isFinite(v)) vMax = Math.max(vMax, v);
  for (const r of o.references ?? []) vMax = Math.max(vMax, r.value);
  // Four grid steps of a round size, so every label is a round number.
  const yStep = niceCeil((vMax * 1.05) / 4);
  const yMax = yStep * 4;
  const x = (t: number) => left + ((t - tMin) / (tMax - tMin)) * plotW;
  const y = (v: number) => top + plotH - (v / yMax) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${escapeXml(o.title)}">`,
  );
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(
    `<text x="${left}" y="18" font-size="14" font-weight="600" fill="#222">${escapeXml(o.title)}</text>`,
  );
  if (o.band && o.band.to > o.band.from) {
    const bx = x(Math.max(tMin, o.band.from));
    const bw = x(Math.min(tMax, o.band.to)) - bx;
    parts.push(
      `<rect x="${bx.toFixed(1)}" y="${top}" width="${Math.max(0, bw).toFixed(1)}" height="${plotH}" fill="#c62828" fill-opacity="0.07"/>`,
    );
  }
  // Horizontal grid and y labels.
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    const yy = y(v).toFixed(1);
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    parts.push(
      `<text x="${left - 6}" y="${(+yy + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#666">${shortNumber(v)}</text>`,
    );
  }
  parts.push(
    `<text x="14" y="${top + plotH / 2}" font-size="11" fill="#666" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle">${escapeXml(o.unit)}</text>`,
  );
  // x ticks: about 8.
  const step = niceCeil(tMax / 8);
  for (let t = 0; t <= tMax + 1e-9; t += step) {
    const xx = x(t).toFixed(1);
    parts.push(`<line x1="${xx}" x2="${xx}" y1="${top + plotH}" y2="${top + plotH + 4}" stroke="#999"/>`);
    parts.push(
      `<text x="${xx}" y="${top + plotH + 16}" font-size="11" text-anchor="middle" fill="#666">${shortNumber(t)} s</text>`,
    );
  }
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#999"/>`);
  for (const r of o.references ?? []) {
    const yy = y(r.value).toFixed(1);
    parts.push(
      `<line x1="${left}" x2="${W - right}" y1="${yy}" y2="${yy}" stroke="${r.color}" stroke-dasharray="6 4" stroke-width="1.5"/>`,
    );
    parts.push(
      `<text x="${W - right - 4}" y="${(+yy - 4).toFixed(1)}" font-size="11" text-anchor="end" fill="${r.color}">${escapeXml(r.label)}</text>`,
    );
  }
  // Markers: vertical lines. Labels (alerts have none: the timeline names them) go in up to three
  // rows, a label moving down a row when the previous one in its row is too close.
  const rowEnds = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const m of [...o.markers].sort((a, b) => a.t - b.t)) {
    const xx = x(Math.min(tMax, Math.max(tMin, m.t)));
    const color = markerColor[m.kind];
    parts.push(
      `<line x1="${xx.toFixed(1)}" x2="${xx.toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="${color}" stroke-width="1.2" stroke-dasharray="3 3"${m.kind === 'alert' ? ' stroke-opacity="0.8"' : ''}/>`,
    );
    if (m.kind === 'alert' || m.label === '') continue;
    const width = m.label.length * 5.8 + 8;
    const anchor = xx + width > W - right ? 'end' : 'start';
    const from = anchor === 'end' ? xx - width : xx;
    const row = rowEnds.findIndex((end) => from > end + 6);
    if (row === -1) continue;
    rowEnds[row] = from + width;
    parts.push(
      `<text x="${(xx + (anchor === 'end' ? -4 : 4)).toFixed(1)}" y="${top + 12 + row * 13}" font-size="10.5" text-anchor="${anchor}" fill="${color}">${escapeXml(m.label)}</text>`,
    );
  }
  for (const s of o.series) {
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      const t = o.t[i] as number;
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (d) {
      parts.push(
        `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" stroke-linejoin="round"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    }
  }
  // Legend, top right.
  let lx = W - right;
  const legend: string[] = [];
  for (const s of [...o.series].reverse()) {
    const w = 26 + s.name.length * 6.3;
    lx -= w;
    legend.push(
      `<line x1="${lx.toFixed(1)}" x2="${(lx + 16).toFixed(1)}" y1="${legendY}" y2="${legendY}" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${(lx + 20).toFixed(1)}" y="${legendY + 4}" font-size="11" fill="#333">${escapeXml(s.name)}</text>`,
    );
  }
  parts.push(...legend);
  parts.push('</svg>');
  return parts.join('');
}
