/** New campaigns: defaults, validation beyond the JSON schema, ids, and the draft record. */
import { randomBytes } from 'node:crypto';
import { ApiError } from '../errors.js';
import type { Selector } from '../selector.js';
import type { Artifact, CampaignRecord, Gate, WaveSpec } from './types.js';

export const DEFAULT_GATE: Gate = {
  maxFailureRatio: 0.05,
  maxOfflineRatio: 0.1,
  reportTimeoutMs: 30 * 60_000,
};

export interface NewCampaign {
  name: string;
  artifact: Artifact;
  selector: Selector;
  waves: WaveSpec[];
  gate: Gate;
  rollbackOf?: string | null;
}

export function newCampaignId(now: number): string {
  // Time first so ids sort roughly by creation; random tail for uniqueness.
  return `cmp_${now.toString(36)}${randomBytes(5).toString('hex')}`;
}

/**
 * Validation beyond the JSON schema, with the field named (400). Waves: cumulative percentages,
 * strictly increasing; minimum device counts never decreasing.
 */
export function validateWaves(waves: readonly WaveSpec[]): void {
  for (let i = 1; i < waves.length; i++) {
    if (waves[i]!.percent <= waves[i - 1]!.percent) {
      throw new ApiError(
        'BW_ERR_API_VALIDATION',
        `waves[${i}].percent must be greater than waves[${i - 1}].percent (${waves[i - 1]!.percent}): percentages are cumulative`,
        { field: `waves[${i}].percent` },
      );
    }
    if (waves[i]!.minDevices < waves[i - 1]!.minDevices) {
      throw new ApiError(
        'BW_ERR_API_VALIDATION',
        `waves[${i}].minDevices must be at least waves[${i - 1}].minDevices: counts are cumulative`,
        { field: `waves[${i}].minDevices` },
      );
    }
  }
}

/** The record of a new draft (not stored): nothing assigned, nothing started. */
export function draftCampaign(input: NewCampaign, createdBy: string, now: number): CampaignRecord {
  return {
    id: newCampaignId(now),
    name: input.name,
    state: 'draft',
    artifact: input.artifact,
    selector: input.selector,
    waves: input.waves,
    gate: input.gate,
    currentWave: null,
    waveStartedAt: null,
    waveSettledAt: null,
    gateOverrideWave: null,
    targetCount: 0,
    haltReason: null,
    haltedBy: null,
    haltedAt: null,
    rollbackOf: input.rollbackOf ?? null,
    createdAt: now,
    createdBy,
    startedAt: null,
    completedAt: null,
    updatedAt: now,
  };
}
