/**
 * A Fleet's options: validation (errors name the option), the reconnect policy they select, the
 * device ids they produce, and the jittered ranges every simulated delay is drawn from.
 */
import { fleetPolicy, naivePolicy, type ReconnectPolicy } from '@breakwater/device/policy';
import type { FleetOptions } from './types.js';

/** The ids a Fleet gives its devices: prefix + 1-based index, zero-padded to at least 5 digits. */
export function fleetDeviceIds(devices: number, idPrefix = 'sim-'): string[] {
  const width = Math.max(5, String(devices).length);
  return Array.from({ length: devices }, (_, i) => `${idPrefix}${String(i + 1).padStart(width, '0')}`);
}

export function resolvePolicy(p: FleetOptions['policy']): ReconnectPolicy {
  if (p === undefined || p === 'fleet') return fleetPolicy();
  if (p === 'naive') return naivePolicy();
  if (typeof p === 'object' && p !== null && typeof p.nextDelayMs === 'function') return p;
  throw new TypeError("policy: expected 'fleet', 'naive' or a ReconnectPolicy");
}

export function validateFleetOptions(o: FleetOptions): void {
  if (!(Number.isSafeInteger(o.devices) && o.devices >= 0))
    throw new RangeError('devices: a non-negative integer');
  if (!(typeof o.target?.host === 'string' && Number.isInteger(o.target.port)))
    throw new TypeError('target: { host, port } required');
  if (o.initialDevices !== undefined && !(Number.isSafeInteger(o.initialDevices) && o.initialDevices >= 0))
    throw new RangeError('initialDevices: a non-negative integer');
  if (o.timeScale !== undefined && !(o.timeScale > 0)) throw new RangeError('timeScale must be > 0');
  if (o.rampPerSec !== undefined && !(o.rampPerSec > 0)) throw new RangeError('rampPerSec must be > 0');
  if (o.maxConnecting !== undefined && !(o.maxConnecting >= 1))
    throw new RangeError('maxConnecting must be >= 1');
  if (o.telemetry && !(o.telemetry.intervalMs > 0)) throw new RangeError('telemetry.intervalMs must be > 0');
  if (o.sourceAddresses && o.sourceAddresses.length === 0)
    throw new RangeError('sourceAddresses: empty list');
}

export function inRange(random: () => number, [min, max]: [number, number]): number {
  return min + Math.floor(random() * (Math.max(max, min) - min + 1));
}
