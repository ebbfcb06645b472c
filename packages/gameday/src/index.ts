/**
 * @breakwater/gameday: rehearse fleet incidents. A fleet simulator of thousands of lightweight
 * MQTT devices (the device SDK's own reconnect policy and auth breaker), fault injection, and
 * (in scenarios/ and report/) scored incident scenarios (issue 6).
 */

export type { ReconnectPolicy } from '@breakwater/device/policy';
export {
  FaultProxy,
  type FaultProxyOptions,
  type FaultProxyStats,
  type FaultSettings,
} from './fault/proxy.js';
export { Fleet } from './fleet/fleet.js';
export type {
  CrashLoopOptions,
  FleetEvents,
  FleetOptions,
  FleetStats,
  OtaBehaviour,
  SimDeviceState,
  TelemetryOptions,
} from './fleet/types.js';
