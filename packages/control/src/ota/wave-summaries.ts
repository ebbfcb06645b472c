/** The per-wave read model of a campaign (`GET /v1/campaigns/:id`). */
import { countsToHealth, effectiveGate } from './gates.js';
import type { CampaignRecord, CampaignRepository, Gate, JobState } from './types.js';

export interface WaveSummary {
  index: number;
  percent: number;
  soakMs: number;
  gate: Gate;
  devices: number;
  states: Partial<Record<JobState, number>>;
  failureRatio: number;
}

export async function waveSummaries(
  campaigns: Pick<CampaignRepository, 'counts'>,
  c: CampaignRecord,
): Promise<WaveSummary[]> {
  const counts = await campaigns.counts(c.id);
  return c.waves.map((w, index) => {
    const states: Partial<Record<JobState, number>> = {};
    const map = new Map<JobState, number>();
    for (const row of counts) {
      if (row.wave !== index) continue;
      states[row.state] = row.count;
      map.set(row.state, row.count);
    }
    const health = countsToHealth(map, 0);
    return {
      index,
      percent: w.percent,
      soakMs: w.soakMs,
      gate: effectiveGate(c.gate, w.gate),
      devices: health.devices,
      states,
      failureRatio: health.devices === 0 ? 0 : health.failed / health.devices,
    };
  });
}
