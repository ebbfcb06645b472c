/**
 * @breakwater/gameday: rehearse fleet incidents. A fleet simulator of thousands of lightweight
 * MQTT devices (the device SDK's own reconnect policy and auth breaker), fault injection, and
 * (in scenarios/ and report/) scored incident scenarios (issue 6).
 */

export type { ReconnectPolicy } from '@breakwater/device/policy';
export { BrokerProcess, type BrokerProcessOptions } from './fault/broker-process.js';
export {
  FaultProxy,
  type FaultProxyOptions,
  type FaultProxyStats,
  type FaultSettings,
} from './fault/proxy.js';
export { Fleet } from './fleet/fleet.js';
export { fleetDeviceIds } from './fleet/fleet-options.js';
export type {
  CrashLoopOptions,
  FleetEvents,
  FleetOptions,
  FleetStats,
  OtaBehaviour,
  SimDeviceState,
  TelemetryOptions,
} from './fleet/types.js';
export type { ExpectationOutcome, Report } from './report/build.js';
export {
  type MatrixCellResult,
  type MatrixReport,
  renderMatrixHtml,
  renderMatrixMarkdown,
  writeMatrixReport,
} from './report/matrix.js';
export { writeReport } from './report/write.js';
export {
  type GamedayIo,
  type GamedayRunFlags,
  listScenarios,
  parseDuration,
  resolveCells,
  resolveParams,
  runGameday,
} from './run.js';
export { findScenario, scenarios } from './scenarios/catalog.js';
export {
  cellName,
  FULL_MATRIX,
  matrixCells,
  selectCells,
} from './scenarios/matrix.js';
export { type MatrixHooks, type RunHooks, runMatrix, runScenario } from './scenarios/runner.js';
export type {
  AuthCache,
  Firmware,
  MatrixAxes,
  MatrixCell,
  PhaseScore,
  ScenarioDefinition,
  ScenarioParams,
  SecondSample,
} from './scenarios/types.js';
