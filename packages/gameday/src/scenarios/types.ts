/**
 * What a game-day scenario is: a broker set-up, a fleet, a fault timeline and expectations that
 * the run passes or fails. Scenarios are plain objects (scenarios/*.ts); the runner
 * (runner.ts) does everything they have in common.
 */
import type { FaultProxy } from '../fault/proxy.js';
import type { Fleet } from '../fleet/fleet.js';
import type { FleetOptions, FleetStats } from '../fleet/types.js';
import type { AlertRecord, ControlAdapter } from './control.js';
import type { BrokerEnv, BrokerSpec } from './environment.js';
import type { PostgresBackend } from './postgres-backend.js';
import type { QosProbe } from './qos-probe.js';

/** `on`: Breakwater's defaults. `off`: the scenario's weakened configuration (see `weakened`). */
export type Protections = 'on' | 'off';

/**
 * The devices' reconnect firmware: `fleet` is the device SDK's policy (jittered, widening backoff
 * that honours the server's `retry-after-ms`), `naive` a fixed 1 s retry that ignores every hint —
 * the firmware of the seed incident, which an operator cannot change.
 */
export type Firmware = 'fleet' | 'naive';

/**
 * The broker's auth cache when the storm hits. `cold`: the storm is the fleet's first connect in
 * the run (nothing cached; devices exist only in the backend). `warm`: the fleet connected earlier
 * in the same run, so the broker holds what those connects earned (positive cache, known-good
 * store) — nothing is ever pre-seeded.
 */
export type AuthCache = 'cold' | 'warm';

/** One cell of the matrix protections × firmware × auth cache (issue 11). */
export interface MatrixCell {
  protections: Protections;
  firmware: Firmware;
  cache: AuthCache;
}

/** The values of each axis a scenario runs with `--matrix` (one value: the axis does not apply). */
export interface MatrixAxes {
  protections: readonly Protections[];
  firmware: readonly Firmware[];
  cache: readonly AuthCache[];
}

/** The incident types of DESIGN.md §1/§6, plus the auth-backend storm and the reboot storm. */
export type ScenarioIncident =
  | 'auth-backend-storm'
  | 'reboot-storm'
  | 'bad-firmware-push'
  | 'mass-disconnect'
  | 'security'
  | 'data-quality'
  | 'capacity-cost'
  | 'region-outage';

export interface ScenarioParams {
  devices: number;
  durationS: number;
  /**
   * Multiplies the device-side delays (reconnect policy, auth breaker, reboot and OTA times) and
   * the scenario's time windows: `durationS / defaults.durationS` unless given. At 1 the fleet
   * behaves like real devices; tests run at ~0.02 so a 10-minute incident fits in seconds.
   */
  timeScale: number;
  protections: Protections;
  firmware: Firmware;
  cache: AuthCache;
  /** A broker to test instead of the in-process one (`--target`). */
  target: RemoteTarget | null;
  /** Seed for the fleet's random source (a run is then replayable up to OS scheduling). */
  seed: number;
}

export interface RemoteTarget {
  host: string;
  port: number;
  /** Its Prometheus endpoint (default http://<host>:8080/metrics, `breakwater up`'s HTTP port). */
  metricsUrl: string | null;
}

/** The in-process Breakwater a scenario asks for. */

export interface ScenarioPlan {
  broker: BrokerSpec;
  /**
   * Fleet options except target and device count. `initialDevices` (default all) are launched at
   * t = 0; the others stay idle until a step calls `fleet.join()`.
   */
  fleet: Omit<FleetOptions, 'target' | 'devices'>;
  /** Devices in the run when more than `params.devices` (devices that join later come on top). */
  devices?: number;
  /** Run length of this cell when it differs from the parameters' (a cold start needs less). */
  durationS?: number;
  /**
   * How many devices "99 % connected" counts in each phase (default: the devices launched at
   * start for `start`, `expectedConnected` for `fault` and `repair`).
   */
  targets?: Partial<Record<PhaseName, number>>;
  /** What the first fault and the last repair are called in the report (default fault, repair). */
  phaseLabels?: { fault?: string; repair?: string };
  /** Devices connect through a FaultProxy (network faults). */
  viaProxy: boolean;
  /** Start the control plane beside the broker (credential revocation, OTA campaigns, alerts). */
  controlPlane: boolean;
  /** Seconds, from the fleet start. Steps run in order; a step may run in the background. */
  timeline: TimelineStep[];
  expectations: Expectation[];
  /**
   * Devices expected connected at the end (default all): revoked or quarantined devices are not
   * part of "99 % reconnected".
   */
  expectedConnected?: (run: RunContext) => number;
  /** What happens to a device's telemetry payloads, for `telemetry-corruption`. */
  onProbeMessage?: (ctx: RunContext, topic: string, payload: Buffer, atMs: number) => void;
  /** Extra per-second series (name → value) the scenario wants in the report. */
  extraSeries?: (ctx: RunContext) => Record<string, number>;
}

export type TimelineKind = 'fault' | 'repair' | 'action';

export interface TimelineStep {
  atS: number;
  kind: TimelineKind;
  label: string;
  run(ctx: RunContext): Promise<void> | void;
}

/** Everything a timeline step or an expectation can reach while the run goes on. */
export interface RunContext {
  readonly params: ScenarioParams;
  readonly fleet: Fleet;
  readonly env: BrokerEnv;
  readonly proxy: FaultProxy | null;
  readonly postgres: PostgresBackend | null;
  readonly control: ControlAdapter | null;
  readonly probe: QosProbe | null;
  /** Epoch ms of t = 0 (the fleet start). */
  readonly t0: number;
  /** Seconds since t = 0. */
  now(): number;
  /** Scenario measurements (report.measurements). */
  measure(name: string, value: number | string | boolean | null): void;
  /** A line in the report's event log (also shown live). */
  note(text: string): void;
  /** Scenario state shared between steps and expectations. */
  readonly state: Map<string, unknown>;
  /** Work a step started in the background; the runner awaits it before scoring. */
  background(work: Promise<unknown>): void;
}

export interface ExpectationResult {
  /** Measured value; null when it could not be measured (the expectation then fails). */
  value: number | null;
  threshold: number;
  unit: string;
  pass: boolean;
  detail?: string;
}

export interface Expectation {
  id: string;
  /** What must hold, in words: "backend queries/s stay under the cap". */
  name: string;
  /** `<=` or `>=`: how value and threshold compare. */
  compare: '<=' | '>=';
  evaluate(run: ScoredRun): Omit<ExpectationResult, 'pass'> & { pass?: boolean };
  /**
   * Why this cell does not judge it (null or absent: it does). Still evaluated and shown, but the
   * verdict ignores it — e.g. how hard a naive fleet retries against a cut network is its
   * firmware's doing, which no broker can change.
   */
  notJudged?: (params: ScenarioParams) => string | null;
}

/** One second of the run. Counters are deltas over the second that ends at `t`. */
export interface SecondSample {
  t: number;
  /** Fleet side. */
  attempts: number;
  connected: number;
  refusals: Record<string, number>;
  networkErrors: number;
  published: number;
  acked: number;
  /** Messages the QoS probe got from devices. */
  delivered: number;
  /** Broker side, from its /metrics (null: not scraped this second). */
  brokerAttempts: number | null;
  brokerConnections: number | null;
  backendQueries: number | null;
  /**
   * Backend call latency this second: the histogram `breakwater_auth_backend_duration_seconds`,
   * cumulative buckets by upper bound (`le`, `+Inf` = count), deltas over the second; null when no
   * call ended this second (or the broker exports no such histogram).
   */
  backendLatency: Record<string, number> | null;
  /** Sum of the latencies of those calls, seconds. */
  backendLatencySumS: number | null;
  /** Backend calls not made, by reason (limit, wait_timeout, breaker_open, rate_limited). */
  backendRejected: Record<string, number>;
  /** The adaptive limit on backend calls in flight at the end of the second (summed over backends). */
  backendLimit: number | null;
  backendInflight: number | null;
  /** Flapping bans started this second. */
  flappingBans: number | null;
  authOutcomes: Record<string, number>;
  admissionRefusals: Record<string, number>;
  /** Messages the broker dropped, by reason (offline_queue_full, slow_consumer, …). */
  messagesDropped: Record<string, number>;
  openSockets: number | null;
  socketsWithoutConnect: number | null;
  openFds: number | null;
  maxFds: number | null;
  messagesIn: number | null;
  messagesOut: number | null;
  breakerOpen: boolean | null;
  /** Alerts firing at the end of the second (null: no alert engine). */
  alertsFiring: number | null;
  extra: Record<string, number>;
}

export interface TimelineEvent {
  t: number;
  kind: TimelineKind | 'note';
  label: string;
}

export interface Scores {
  /** Seconds from the first fault to the first firing alert; null with a note. */
  timeToDetectS: number | null;
  timeToDetectNote: string | null;
  peakAttemptsPerMin: number;
  peakBackendQueriesPerSec: number | null;
  /** Seconds from the last repair (or the fault) until 99 % of the expected devices were connected. */
  timeTo99ReconnectedS: number | null;
  /** Every PUBLISH the fleet sent (QoS 0 and 1). */
  published: number;
  qos1Acked: number;
  qos1Delivered: number | null;
  /** Acked by the broker, never delivered to the probe; null without a probe. */
  qos1Lost: number | null;
  fdPeak: number | null;
  openSocketsPeak: number | null;
  /** Seconds until 99 % of the phase's devices were connected, per phase (null: never, or no such phase). */
  timeTo99AfterStartS: number | null;
  timeTo99AfterFaultS: number | null;
  timeTo99AfterRepairS: number | null;
  /** Backend calls / CONNECTs the broker received, over the run (null: no backend series). */
  backendCallsPerAttempt: number | null;
  /** Backend call latency over the run, from the broker's histogram (p99 interpolated as Prometheus does). */
  backendP99Ms: number | null;
  backendMeanMs: number | null;
  /** Flapping bans started during the run (null: not exported). */
  flappingBans: number | null;
  /** The same figures per phase: start (t = 0 to the fault), fault (to the repair), repair (to the end). */
  phases: PhaseScore[];
}

export type PhaseName = 'start' | 'fault' | 'repair';

export interface PhaseScore {
  name: PhaseName;
  /** What the report calls it ("start", "drop", "fix", …). */
  label: string;
  fromS: number;
  toS: number;
  /** Devices counted by "99 % connected" in this phase. */
  target: number;
  timeTo99S: number | null;
  /** Connection attempts, fleet side and broker side (CONNECTs received). */
  fleetAttempts: number;
  brokerAttempts: number | null;
  backendCalls: number | null;
  backendCallsPerAttempt: number | null;
  peakBackendCallsPerSec: number | null;
  backendP99Ms: number | null;
  backendMeanMs: number | null;
  authOutcomes: Record<string, number>;
  backendRejected: Record<string, number>;
  refusals: Record<string, number>;
}

/** What expectations are evaluated against. */
export interface ScoredRun {
  params: ScenarioParams;
  seconds: SecondSample[];
  events: TimelineEvent[];
  measurements: Record<string, number | string | boolean | null>;
  scores: Scores;
  fleetFinal: FleetStats;
  /** Seconds of the first fault and of the last repair (null when none). */
  faultAtS: number | null;
  repairAtS: number | null;
  expectedConnected: number;
  /** Devices launched at t = 0. */
  initialDevices: number;
}

export interface ScenarioDefinition {
  name: string;
  title: string;
  incident: ScenarioIncident;
  /** One paragraph: what is rehearsed and what Breakwater must do. */
  summary: string;
  /** What `--protections off` changes in this scenario. */
  weakened: string;
  /** Full scale; `ci`: the small scale the tests run (a few seconds per cell). */
  defaults: { devices: number; durationS: number; ci?: { devices: number; durationS: number } };
  /**
   * The axes `--matrix` runs (default: this scenario has one cell, its protections on and off).
   * What each axis changes is described in `matrixNotes`.
   */
  matrix?: MatrixAxes;
  /** What cold and warm mean in this scenario, when it has that axis. */
  matrixNotes?: string;
  /** The in-process broker is required (the fault needs its internals, e.g. its auth backend). */
  requiresInProcess: boolean;
  build(params: ScenarioParams): ScenarioPlan;
}

export type { AlertRecord, BrokerSpec };
