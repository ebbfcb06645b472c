/** Every scenario `breakwater gameday list` shows, in the order of DESIGN.md §1. */
import { authBackendOutage } from './auth-backend-outage.js';
import { badFirmware } from './bad-firmware.js';
import { capacity } from './capacity.js';
import { credentialLeak } from './credential-leak.js';
import { massDisconnect } from './mass-disconnect.js';
import { otaRebootStorm } from './ota-reboot-storm.js';
import { sinkOutage } from './sink-outage.js';
import { telemetryCorruption } from './telemetry-corruption.js';
import type { ScenarioDefinition } from './types.js';

export const scenarios: readonly ScenarioDefinition[] = Object.freeze([
  authBackendOutage,
  otaRebootStorm,
  massDisconnect,
  credentialLeak,
  badFirmware,
  telemetryCorruption,
  capacity,
  sinkOutage,
]);

export function findScenario(name: string): ScenarioDefinition | undefined {
  return scenarios.find((s) => s.name === name);
}
