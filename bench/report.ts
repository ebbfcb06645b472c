/** Machine description and result files (bench/results/<name>.json and .md). */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

export interface MachineInfo {
  readonly date: string;
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memTotalMiB: number;
  readonly node: string;
  readonly kernel: string;
  readonly fdLimit: string;
  /** 1/5/15-minute load average when the run started: other work on the host skews results. */
  readonly loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  let fdLimit = 'unknown';
  try {
    fdLimit = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {}
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalMiB: Math.round(os.totalmem() / 1024 / 1024),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    fdLimit,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function machineMarkdown(m: MachineInfo): string {
  return [
    `- date: ${m.date}`,
    `- CPU: ${m.nproc} × ${m.cpuModel}; memory ${m.memTotalMiB} MiB; ${m.kernel}; open files limit ${m.fdLimit}`,
    `- Node ${m.node}; load average at start ${m.loadAverage.join(' / ')}`,
  ].join('\n');
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function fmtNumber(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtRatio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !b)
    return 'n/a';
  const r = a / b;
  return `${r < 0.1 ? r.toPrecision(2) : r.toFixed(2)}x`;
}

export function writeResults(name: string, json: unknown, markdown: string): { json: string; md: string } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const jsonPath = join(RESULTS_DIR, `${name}.json`);
  const mdPath = join(RESULTS_DIR, `${name}.md`);
  writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(mdPath, markdown.endsWith('\n') ? markdown : `${markdown}\n`);
  return { json: jsonPath, md: mdPath };
}
