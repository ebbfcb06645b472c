/**
 * Deterministic wave assignment. Each device gets a rank = sha256(campaign id, device id): the
 * order is fixed by the campaign id alone, independent of the order devices were listed or
 * registered, so the same campaign always picks the same devices, and raising a wave's percentage
 * (or its minimum) only moves the cut further down the same order: it adds devices, never swaps
 * one out.
 */
import { createHash } from 'node:crypto';
import type { WaveSpec } from './types.js';

/** 16 hex digits of sha256(`<campaign>\0<device>`); compare as strings (fixed width). */
export function rankOf(campaignId: string, deviceId: string): string {
  return createHash('sha256').update(`${campaignId}\0${deviceId}`).digest('hex').slice(0, 16);
}

/**
 * Cumulative device counts at the end of each wave for `total` target devices:
 * max(ceil(percent% of total), minDevices, previous wave), at most total. The last wave at
 * 100 % always covers every device.
 */
export function cumulativeCounts(
  total: number,
  waves: readonly Pick<WaveSpec, 'percent' | 'minDevices'>[],
): number[] {
  const out: number[] = [];
  let previous = 0;
  for (const w of waves) {
    // Integer arithmetic: 10 % of 50 is exactly 5, not 5.000000000000001 rounded up to 6.
    const byPercent = Math.ceil((w.percent * total) / 100 - 1e-9);
    const count = Math.min(total, Math.max(byPercent, w.minDevices, previous));
    out.push(count);
    previous = count;
  }
  return out;
}

export interface Assignment {
  deviceId: string;
  rank: string;
  wave: number;
}

/**
 * Ranks the devices and cuts the order into waves. Devices past the last wave's count (last
 * wave below 100 %) are not part of the campaign.
 */
export function assignWaves(
  campaignId: string,
  deviceIds: readonly string[],
  waves: readonly Pick<WaveSpec, 'percent' | 'minDevices'>[],
): Assignment[] {
  const ranked = deviceIds
    .map((deviceId) => ({ deviceId, rank: rankOf(campaignId, deviceId) }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : a.deviceId < b.deviceId ? -1 : 1));
  const counts = cumulativeCounts(ranked.length, waves);
  const out: Assignment[] = [];
  let wave = 0;
  for (let i = 0; i < ranked.length; i++) {
    while (wave < counts.length && i >= counts[wave]!) wave++;
    if (wave >= counts.length) break;
    out.push({ ...ranked[i]!, wave });
  }
  return out;
}
