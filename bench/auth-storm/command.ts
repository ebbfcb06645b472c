/**
 * `npm run bench -- auth-storm [--quick] [--devices N] [--processes N] [--protections defaults,off]
 * [--name auth-storm]`: runs the replay, writes bench/results/<name>.json, .md and .svg.
 */
import { parseArgs } from 'node:util';
import { machineInfo, writeResults } from '../report.js';
import { Protection, type ProtectionValue } from './broker.js';
import { authStormMarkdown, authStormSvg, verdicts, writeSvg } from './report.js';
import { type AuthStormOptions, runAuthStorm } from './scenario.js';

/** Full run: the timeline. Quick: the same shape, compressed (about 1.5 min in all). */
const TIMELINES = {
  full: { breakAtS: 30, fixAtS: 90, endAtS: 110 },
  quick: { breakAtS: 10, fixAtS: 30, endAtS: 40 },
} as const;

export async function authStormCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      devices: { type: 'string', default: '5000' },
      processes: { type: 'string', default: '4' },
      protections: { type: 'string', default: 'defaults,off' },
      'seed-age-min': { type: 'string', default: '120' },
      name: { type: 'string' },
    },
  });
  const protections = (values.protections as string).split(',').map((p) => p.trim()) as ProtectionValue[];
  for (const p of protections) {
    if (!Object.values(Protection).includes(p))
      throw new Error(`--protections: unknown '${p}' (allowed: defaults, off)`);
  }
  const options: AuthStormOptions = {
    devices: Number(values.devices),
    processes: Number(values.processes),
    ...(values.quick ? TIMELINES.quick : TIMELINES.full),
    retryMs: 1000,
    spreadMs: 5000,
    seedAgeMin: Number(values['seed-age-min']),
    protections,
  };
  const machine = machineInfo();
  const started = Date.now();
  const { runs, listener } = await runAuthStorm(options, log);
  const name = values.name ?? 'auth-storm';
  const defaults = runs.find((r) => r.protection === Protection.Defaults);
  const checks = defaults ? verdicts(defaults) : [];
  const files = writeResults(
    name,
    {
      benchmark: 'auth-storm',
      machine,
      options: { ...options, quick: values.quick, listener },
      targets: checks,
      runs,
      durationS: (Date.now() - started) / 1000,
    },
    authStormMarkdown(machine, options, runs, ''),
  );
  const svg = writeSvg(name, authStormSvg(options, runs));
  for (const c of checks) log(`target ${c.met ? 'met' : 'MISSED'}: ${c.target} — ${c.detail}`);
  log(`wrote ${files.json}, ${files.md} and ${svg}`);
  return 0;
}
