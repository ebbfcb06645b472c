/**
 * A reader for the Prometheus text exposition format (version 0.0.4), enough for what
 * prom-client writes: `name{label="value",...} number` lines, `#` comments, escaped label values.
 * The game day reads the broker's own /metrics this way, so a remote broker (`--target`) and the
 * in-process one are measured by the same code, from the same numbers an operator's Prometheus sees.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    let name: string;
    let labels: Record<string, string> = {};
    let rest: string;
    if (brace !== -1 && (space === -1 || brace < space)) {
      name = line.slice(0, brace);
      const close = findLabelsEnd(line, brace + 1);
      if (close === -1) continue;
      labels = parseLabels(line.slice(brace + 1, close));
      rest = line.slice(close + 1).trim();
    } else {
      if (space === -1) continue;
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    // A timestamp may follow the value; prom-client does not write one.
    const value = parseValue(rest.split(/\s+/)[0] ?? '');
    if (value === null) continue;
    out.push({ name, labels, value });
  }
  return out;
}

function findLabelsEnd(line: string, from: number): number {
  let inString = false;
  for (let i = from; i < line.length; i++) {
    const c = line[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '}') return i;
  }
  return -1;
}

function parseLabels(body: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
  let m: RegExpExecArray | null = re.exec(body);
  while (m !== null) {
    labels[m[1]!] = m[2]!.replace(/\\(["\\n])/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    m = re.exec(body);
  }
  return labels;
}

function parseValue(s: string): number | null {
  if (s === '+Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  if (s === 'NaN') return Number.NaN;
  const v = Number(s);
  return s !== '' && !Number.isNaN(v) ? v : null;
}

/** A scrape, indexed for the questions the sampler asks. */
export class MetricsSnapshot {
  readonly samples: readonly Sample[];
  readonly #byName = new Map<string, Sample[]>();

  constructor(samples: readonly Sample[]) {
    this.samples = samples;
    for (const s of samples) {
      const list = this.#byName.get(s.name);
      if (list) list.push(s);
      else this.#byName.set(s.name, [s]);
    }
  }

  static parse(text: string): MetricsSnapshot {
    return new MetricsSnapshot(parsePrometheusText(text));
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** Sum over every series of `name` whose labels include `match`; 0 when absent. */
  sum(name: string, match: Record<string, string> = {}): number {
    let total = 0;
    for (const s of this.#byName.get(name) ?? []) {
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
    return total;
  }

  /** Sum of `name` grouped by one label's value. */
  byLabel(name: string, label: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.#byName.get(name) ?? []) {
      const k = s.labels[label] ?? '';
      out[k] = (out[k] ?? 0) + s.value;
    }
    return out;
  }

  /** Largest value of `name` (gauges such as the breaker state), null when absent. */
  max(name: string): number | null {
    const list = this.#byName.get(name);
    if (!list || list.length === 0) return null;
    return Math.max(...list.map((s) => s.value));
  }
}
