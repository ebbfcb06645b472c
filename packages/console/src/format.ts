export function num(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en');
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(1)} %`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

/** Sum of the latest values of every series whose key starts with `prefix:`. */
export function sumPrefix(latest: Record<string, number>, prefix: string): number | null {
  let sum: number | null = null;
  for (const [k, v] of Object.entries(latest)) if (k.startsWith(`${prefix}:`)) sum = (sum ?? 0) + v;
  return sum;
}

/** The label values present for `prefix:` keys. */
export function labelsOf(series: Record<string, unknown>, prefix: string): string[] {
  return Object.keys(series)
    .filter((k) => k.startsWith(`${prefix}:`))
    .map((k) => k.slice(prefix.length + 1))
    .sort();
}
