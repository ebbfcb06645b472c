/**
 * A uPlot time-series chart over the live state, with the alert threshold drawn as a dashed red
 * line (and always inside the y range, so "how far from firing" is visible at a glance).
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  values: Array<number | null>;
}

export interface ChartProps {
  title: string;
  unit: string;
  t: number[];
  series: ChartSeries[];
  threshold?: { value: number; label: string } | null;
  /** Redraw trigger (the live state's version). */
  version: number;
  /** Seconds shown, ending at the newest point (default 15 min; the data holds up to 2 h). */
  windowSec?: number;
}

export const PALETTE = [
  '#1f6feb',
  '#d97706',
  '#059669',
  '#9333ea',
  '#db2777',
  '#0891b2',
  '#65a30d',
  '#525252',
];
const THRESHOLD_COLOR = '#dc2626';

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const thresholdRef = useRef<number | null>(null);
  thresholdRef.current = props.threshold?.value ?? null;
  const windowRef = useRef(900);
  windowRef.current = props.windowSec ?? 900;
  const labels = props.series.map((s) => s.label).join('|');

  // (Re)create when the set of series changes; otherwise only setData.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height: 180,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          range: (_u, _min, max) => [max - windowRef.current, max],
        },
        y: {
          range: (_u, min, max) => {
            const th = thresholdRef.current;
            let hi = Math.max(Number.isFinite(max) ? max : 0, th !== null ? th * 1.15 : 0);
            if (!(hi > 0)) hi = 1; // nothing yet: a 0..1 axis rather than 0, 0, 0
            return [Math.min(0, Number.isFinite(min) ? min : 0), hi * 1.05];
          },
        },
      },
      axes: [
        { stroke: '#444', grid: { stroke: '#eee' } },
        { stroke: '#444', grid: { stroke: '#eee' }, size: 56 },
      ],
      series: [
        {},
        ...props.series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length]!,
          width: 1.5,
          spanGaps: false,
        })),
      ],
      hooks: {
        draw: [
          (u: uPlot) => {
            const th = thresholdRef.current;
            if (th === null) return;
            const y = u.valToPos(th, 'y', true);
            const { ctx } = u;
            ctx.save();
            ctx.strokeStyle = THRESHOLD_COLOR;
            ctx.setLineDash([6, 4]);
            ctx.lineWidth = 1.5;
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
            ctx.restore();
          },
        ],
      },
    };
    const p = new uPlot(opts, data(props), el);
    plot.current = p;
    const ro = new ResizeObserver(() => p.setSize({ width: Math.max(el.clientWidth, 200), height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      p.destroy();
      plot.current = null;
    };
  }, [labels]);

  useEffect(() => {
    plot.current?.setData(data(props));
  }, [props.version, props.threshold?.value, props.windowSec]);

  const last = props.series.map((s) => {
    for (let i = s.values.length - 1; i >= 0; i--) if (s.values[i] !== null) return s.values[i]!;
    return null;
  });
  return (
    <figure class="chart">
      <figcaption>
        <span class="chart-title">{props.title}</span>
        <span class="chart-unit">{props.unit}</span>
      </figcaption>
      <div ref={box} class="chart-canvas" role="img" aria-label={`${props.title} chart`} />
      <ul class="legend">
        {props.series.map((s, i) => (
          <li key={s.label}>
            <span class="swatch" style={{ background: PALETTE[i % PALETTE.length] }} />
            {s.label}: <strong>{last[i] === null ? '–' : fmt(last[i]!)}</strong>
          </li>
        ))}
        {props.series.length === 0 && <li class="muted">no data yet</li>}
        {props.threshold && (
          <li>
            <span class="swatch threshold" />
            {props.threshold.label}: <strong>{fmt(props.threshold.value)}</strong>
          </li>
        )}
      </ul>
    </figure>
  );
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en') : Number(v.toPrecision(3)).toString();
}

function data(props: ChartProps): uPlot.AlignedData {
  return [props.t, ...props.series.map((s) => s.values)] as uPlot.AlignedData;
}
