/**
 * What does a fleet do when every device drops at the same moment and the broker stays
 * unavailable (every attempt fails at once)? Runs the real policy code over N devices and
 * counts connection attempts. Produces the table in packages/device/README.md.
 *
 *   node --conditions=source --import tsx packages/device/scripts/reconnect-storm.ts [devices] [seed]
 */
import { pathToFileURL } from 'node:url';
import {
  exponentialPolicy,
  fleetPolicy,
  mulberry32,
  naivePolicy,
  type ReconnectPolicy,
} from '../src/policy.js';

export interface StormResult {
  policy: string;
  devices: number;
  /** Attempts by the whole fleet within the first minute after the drop. */
  firstMinute: number;
  /** Largest number of attempts in any one-second bucket during the first 10 minutes. */
  peakPerSecond: number;
  /** Attempts within the first 10 minutes. */
  firstTenMinutes: number;
}

export function simulateStorm(policy: ReconnectPolicy, devices: number, seed = 1): StormResult {
  const horizonMs = 600_000;
  const random = mulberry32(seed);
  const perSecond = new Map<number, number>();
  let firstMinute = 0;
  let firstTenMinutes = 0;
  for (let d = 0; d < devices; d++) {
    let t = 0;
    for (let attempt = 1; ; attempt++) {
      t += policy.nextDelayMs({ attempt }, random);
      if (t >= horizonMs) break;
      firstTenMinutes++;
      if (t < 60_000) firstMinute++;
      const s = Math.floor(t / 1000);
      perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
    }
  }
  return {
    policy: policy.name,
    devices,
    firstMinute,
    peakPerSecond: Math.max(0, ...perSecond.values()),
    firstTenMinutes,
  };
}

export function stormTable(devices = 10_000, seed = 1): StormResult[] {
  return [
    simulateStorm(naivePolicy(), devices, seed),
    simulateStorm(exponentialPolicy(), devices, seed),
    simulateStorm(fleetPolicy(), devices, seed),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const devices = Number(process.argv[2] ?? 10_000);
  const seed = Number(process.argv[3] ?? 1);
  console.log('| policy | attempts in the 1st minute | peak attempts / s | attempts in 10 min |');
  console.log('|---|---:|---:|---:|');
  for (const r of stormTable(devices, seed)) {
    console.log(`| ${r.policy} | ${r.firstMinute} | ${r.peakPerSecond} | ${r.firstTenMinutes} |`);
  }
}
