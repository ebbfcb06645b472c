/**
 * `npm run bench -- auth-storm [--quick] [--devices N] [--new-devices N] [--processes N]
 * [--protections on,off] [--firmware fleet,naive] [--slow-ms 200] [--slow-only] [--name auth-storm]`:
 * runs the matrix (and the slow-Postgres run), writes bench/results/<name>.json, .md and .svg.
 */
import { parseArgs } from 'node:util';
import { machineInfo, writeResults } from '../report.js';
import { Protection, type ProtectionValue } from './broker.js';
import { Firmware, type FirmwareValue } from './protocol.js';
import { authStormMarkdown, authStormSvg, verdicts, writeSvg } from './report.js';
import { type AuthStormOptions, runAuthStorm } from './scenario.js';

/** Phase bounds. Quick: the same shape, shorter caps and outage. */
const TIMELINES = {
  full: { coldMaxS: 60, outageS: 30, afterFixMaxS: 90, slowS: 30 },
  quick: { coldMaxS: 30, outageS: 20, afterFixMaxS: 40, slowS: 20 },
} as const;

function list<T extends string>(raw: string, allowed: readonly T[], flag: string): T[] {
  const out = raw.split(',').map((p) => p.trim()) as T[];
  for (const p of out) {
    if (!allowed.includes(p)) throw new Error(`${flag}: unknown '${p}' (allowed: ${allowed.join(', ')})`);
  }
  return out;
}

export async function authStormCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      devices: { type: 'string', default: '12000' },
      'new-devices': { type: 'string' },
      processes: { type: 'string', default: '4' },
      protections: { type: 'string', default: 'on,off' },
      firmware: { type: 'string', default: 'naive,fleet' },
      'slow-ms': { type: 'string', default: '200' },
      'slow-only': { type: 'boolean', default: false },
      name: { type: 'string' },
    },
  });
  const devices = Number(values.devices);
  const options: AuthStormOptions = {
    devices,
    newDevices:
      values['new-devices'] === undefined ? Math.round(devices / 10) : Number(values['new-devices']),
    processes: Number(values.processes),
    retryMs: 1000,
    spreadMs: 5000,
    settleS: 3,
    ...(values.quick ? TIMELINES.quick : TIMELINES.full),
    protections: list<ProtectionValue>(
      values.protections as string,
      Object.values(Protection),
      '--protections',
    ),
    firmwares: list<FirmwareValue>(values.firmware as string, Object.values(Firmware), '--firmware'),
    slowMs: Number(values['slow-ms']),
    slowOnly: values['slow-only'] as boolean,
  };
  const machine = machineInfo();
  const started = Date.now();
  const { runs, listener } = await runAuthStorm(options, log);
  const durationS = (Date.now() - started) / 1000;
  const name = values.name ?? 'auth-storm';
  const checks = verdicts(runs, options);
  const files = writeResults(
    name,
    {
      benchmark: 'auth-storm',
      machine,
      options: { ...options, quick: values.quick, listener },
      targets: checks,
      runs,
      durationS,
    },
    authStormMarkdown(machine, options, runs, durationS),
  );
  const svg = writeSvg(name, authStormSvg(runs));
  for (const c of checks)
    log(
      `target ${c.met === null ? 'n/a' : c.met ? 'met' : 'MISSED'} (${c.firmware}): ${c.target} — ${c.detail}`,
    );
  log(`wrote ${files.json}, ${files.md} and ${svg} (${Math.round(durationS)} s)`);
  return 0;
}
