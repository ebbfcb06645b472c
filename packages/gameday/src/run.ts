/**
 * `breakwater gameday run <scenario>` and `breakwater gameday list`: parameters from the flags,
 * a live progress line while it runs (only on a TTY), the three report files, and the exit code
 * (0 when every expectation passed, 1 otherwise).
 */
import { writeMatrixReport } from './report/matrix.js';
import { writeReport } from './report/write.js';
import { findScenario, scenarios } from './scenarios/catalog.js';
import {
  CACHES,
  cellName,
  defaultFirmware,
  FIRMWARES,
  matrixAxes,
  matrixCells,
  selectCells,
} from './scenarios/matrix.js';
import { runMatrix, runScenario } from './scenarios/runner.js';
import type {
  AuthCache,
  Firmware,
  MatrixCell,
  ScenarioDefinition,
  ScenarioParams,
  SecondSample,
  TimelineEvent,
} from './scenarios/types.js';

export interface GamedayRunFlags {
  devices?: number | string;
  /** mqtt://host:port of a broker to test instead of the in-process one. */
  target?: string;
  /** Its /metrics URL (default http://<host>:8080/metrics). */
  metrics?: string;
  /** Run length: `90`, `90s`, `5m`, `1h` (default: the scenario's full-scale length). */
  duration?: string;
  /** Override the time scale (default duration / full-scale duration). */
  timeScale?: number | string;
  /** Directory for report.json, summary.md, report.html (default ./gameday-reports/<scenario>-<time>). */
  report?: string;
  protections?: 'on' | 'off' | string;
  /** Device firmware: fleet (SDK backoff, honours retry hints) or naive (fixed 1 s retry). */
  firmware?: 'fleet' | 'naive' | string;
  /** Auth cache when the storm hits: cold (first connect of the fleet) or warm (connected before). */
  cache?: 'cold' | 'warm' | string;
  /**
   * Run the matrix protections × firmware × auth cache: true (or `all`) for every cell of the
   * scenario, or a comma-separated list of cells such as `on/naive/warm,off/*\/cold`.
   */
  matrix?: boolean | string;
  /** `ci`: the scenario's small test scale; `full` (default): its full scale. */
  scale?: 'ci' | 'full' | string;
  seed?: number | string;
}

export interface GamedayIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
}

export class GamedayUsageError extends Error {}

/** `90` (seconds), `90s`, `5m`, `1h`, `1m30s` → seconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  let m: RegExpExecArray | null = re.exec(t);
  while (m !== null) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : n * 3600;
    consumed = re.lastIndex;
    m = re.exec(t);
  }
  if (consumed !== t.length || consumed === 0) {
    throw new GamedayUsageError(`--duration ${JSON.stringify(text)}: use e.g. 90s, 5m, 1h`);
  }
  return total;
}

export function parseTarget(url: string, metrics?: string): NonNullable<ScenarioParams['target']> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new GamedayUsageError(`--target ${JSON.stringify(url)}: expected mqtt://host:port`);
  }
  if (u.protocol !== 'mqtt:' && u.protocol !== 'tcp:') {
    throw new GamedayUsageError(`--target ${JSON.stringify(url)}: only mqtt:// (plain TCP) is supported`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return {
    host,
    port: u.port ? Number(u.port) : 1883,
    metricsUrl: metrics ?? `http://${u.hostname}:8080/metrics`,
  };
}

function positiveInt(name: string, v: number | string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new GamedayUsageError(`${name} must be a positive integer`);
  return n;
}

export function resolveParams(def: ScenarioDefinition, flags: GamedayRunFlags): ScenarioParams {
  const scale = flags.scale ?? 'full';
  if (scale !== 'ci' && scale !== 'full') throw new GamedayUsageError('--scale must be ci or full');
  const base = scale === 'ci' && def.defaults.ci ? def.defaults.ci : def.defaults;
  const devices = positiveInt('--devices', flags.devices) ?? base.devices;
  const durationS = flags.duration !== undefined ? parseDuration(flags.duration) : base.durationS;
  if (!(durationS >= 3)) throw new GamedayUsageError('--duration must be at least 3 s');
  let timeScale = durationS / def.defaults.durationS;
  if (flags.timeScale !== undefined) {
    timeScale = Number(flags.timeScale);
    if (!(timeScale > 0)) throw new GamedayUsageError('--time-scale must be > 0');
  }
  const protections = flags.protections ?? 'on';
  if (protections !== 'on' && protections !== 'off') {
    throw new GamedayUsageError('--protections must be on or off');
  }
  const firmware = flags.firmware ?? defaultFirmware(protections);
  if (!FIRMWARES.includes(firmware as Firmware))
    throw new GamedayUsageError('--firmware must be fleet or naive');
  const axes = matrixAxes(def);
  const cache = flags.cache ?? (axes.cache.includes('warm') ? 'warm' : (axes.cache[0] as AuthCache));
  if (!CACHES.includes(cache as AuthCache)) throw new GamedayUsageError('--cache must be cold or warm');
  if (!axes.cache.includes(cache as AuthCache)) {
    throw new GamedayUsageError(`--cache ${cache}: ${def.name} has no such cell (${axes.cache.join(', ')})`);
  }
  return {
    devices,
    durationS: Math.round(durationS),
    timeScale: Math.round(timeScale * 10_000) / 10_000,
    protections,
    firmware: firmware as Firmware,
    cache: cache as AuthCache,
    target: flags.target ? parseTarget(flags.target, flags.metrics) : null,
    seed: flags.seed !== undefined ? Number(flags.seed) : Date.now() % 2 ** 31,
  };
}

/** The cells `--matrix` asks for (null: a single run). */
export function resolveCells(def: ScenarioDefinition, flags: GamedayRunFlags): MatrixCell[] | null {
  if (flags.matrix === undefined || flags.matrix === false) return null;
  if (flags.protections !== undefined || flags.firmware !== undefined || flags.cache !== undefined) {
    throw new GamedayUsageError(
      '--matrix picks the cells itself: drop --protections, --firmware and --cache',
    );
  }
  try {
    return selectCells(def, flags.matrix);
  } catch (err) {
    throw new GamedayUsageError(err instanceof Error ? err.message : String(err));
  }
}

/** `breakwater gameday list`. */
export function listScenarios(io: GamedayIo): number {
  const width = Math.max(...scenarios.map((s) => s.name.length));
  for (const s of scenarios) {
    const a = s.matrix;
    const cells = matrixCells(s);
    const matrix = a
      ? `${cells.length} cells, ${a.protections.join('|')} × ${a.firmware.join('|')} × ${a.cache.join('|')}`
      : cells.map(cellName).join(', ');
    io.stdout.write(
      `${s.name.padEnd(width)}  ${s.title} (full scale: ${s.defaults.devices.toLocaleString('en-US')} devices, ${s.defaults.durationS} s; matrix: ${matrix})\n`,
    );
  }
  return 0;
}

/** The live progress line (one line, rewritten every second; the header names the scenario). */
export function progressLine(s: SecondSample, durationS: number, devices: number, phase: string): string {
  const refused = Object.values(s.refusals).reduce((a, b) => a + b, 0);
  const parts = [
    `t=${s.t}/${durationS}s${phase ? ` ${phase}` : ''}`,
    `conn ${s.connected}/${devices}`,
    `att ${s.attempts}/s`,
    `refused ${refused}/s`,
    s.backendQueries !== null ? `queries ${s.backendQueries}/s` : null,
    s.openSockets !== null ? `sockets ${s.openSockets}` : null,
    `msgs ${s.delivered}/s`,
    s.alertsFiring ? `alerts ${s.alertsFiring}` : null,
  ];
  return parts.filter(Boolean).join(' | ');
}

function defaultReportDir(name: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  return `gameday-reports/${name}-${stamp}`;
}

/** `breakwater gameday run <scenario>`: returns the exit code. */
export async function runGameday(name: string, flags: GamedayRunFlags, io: GamedayIo): Promise<number> {
  const def = findScenario(name);
  if (!def) {
    io.stderr.write(
      `breakwater: unknown scenario ${JSON.stringify(name)}; one of: ${scenarios.map((s) => s.name).join(', ')}\n`,
    );
    return 2;
  }
  let params: ScenarioParams;
  let cells: MatrixCell[] | null;
  try {
    cells = resolveCells(def, flags);
    params = resolveParams(
      def,
      cells ? { ...flags, protections: undefined, firmware: undefined, cache: undefined } : flags,
    );
  } catch (err) {
    if (err instanceof GamedayUsageError) {
      io.stderr.write(`breakwater: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const tty = io.stdout.isTTY === true;
  let lineShown = false;
  let phase = '';
  const clearLine = () => {
    if (tty && lineShown) {
      io.stdout.write('\r\x1b[2K');
      lineShown = false;
    }
  };
  const say = (line: string) => {
    clearLine();
    io.stdout.write(`${line}\n`);
  };
  const hooks = {
    log: (l: string) => say(`  ${l}`),
    onEvent: (e: TimelineEvent) => {
      if (e.kind === 'fault') phase = '[fault]';
      else if (e.kind === 'repair') phase = '[repaired]';
      say(`  t=${e.t}s ${e.kind === 'note' ? '' : `${e.kind}: `}${e.label}`);
    },
    onSecond: (s: SecondSample) => {
      if (!tty) return;
      const cols = io.stdout.columns ?? 120;
      io.stdout.write(
        `\r\x1b[2K${progressLine(s, params.durationS, params.devices, phase).slice(0, cols - 1)}`,
      );
      lineShown = true;
    },
  };
  if (cells) {
    say(
      `game day matrix: ${def.name} — ${cells.length} cells (${cells.map(cellName).join(', ')}), ${params.devices} devices, ${params.durationS} s each, time scale ${params.timeScale}`,
    );
    const dir = flags.report ?? defaultReportDir(`${def.name}-matrix`);
    let matrix: Awaited<ReturnType<typeof runMatrix>>;
    try {
      matrix = await runMatrix(def, params, cells, {
        ...hooks,
        onCell: (cell, i, of) => {
          phase = '';
          say(`cell ${i + 1}/${of}: ${cellName(cell)}`);
        },
        onCellDone: (r) => {
          clearLine();
          const failed = r.report.expectations.filter((e) => !e.pass && !e.notJudged);
          say(
            `  ${r.report.passed ? 'PASS' : 'FAIL'}  ${r.name}${failed.length ? ` (failed: ${failed.map((e) => e.id).join(', ')})` : ''}`,
          );
        },
      });
    } catch (err) {
      clearLine();
      io.stderr.write(`breakwater: game day failed: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    clearLine();
    const files = await writeMatrixReport(matrix, dir);
    say(
      `${matrix.passed ? 'PASSED' : 'FAILED'}: matrix report in ${files.dir} (report.html, summary.md, matrix.json; one directory per cell)`,
    );
    return matrix.passed ? 0 : 1;
  }
  say(
    `game day: ${def.name} — ${params.devices} devices, ${params.durationS} s, time scale ${params.timeScale}, cell ${cellName(params)}`,
  );
  let report: Awaited<ReturnType<typeof runScenario>>;
  try {
    report = await runScenario(def, params, hooks);
  } catch (err) {
    clearLine();
    io.stderr.write(`breakwater: game day failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  clearLine();
  const dir = flags.report ?? defaultReportDir(def.name);
  const files = await writeReport(report, dir);
  for (const e of report.expectations) {
    const value = e.value === null ? 'n/a' : `${e.value} ${e.unit}`;
    say(
      `  ${e.pass ? 'PASS' : e.notJudged ? 'INFO' : 'FAIL'}  ${e.name}: ${value} (${e.compare} ${e.threshold})${e.notJudged && !e.pass ? ` — not judged: ${e.notJudged}` : ''}`,
    );
  }
  say(
    `${report.passed ? 'PASSED' : 'FAILED'}: report in ${files.dir} (report.html, summary.md, report.json)`,
  );
  return report.passed ? 0 : 1;
}
