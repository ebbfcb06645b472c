/**
 * What a game-day scenario is: a broker set-up, a fleet, a fault timeline and expectations that
 * the run passes or fails. Scenarios are plain objects (scenarios/*.ts); the runner
 * (runner.ts) does everything they have in common.
 */
import type { AdmissionConfigInput } from '@breakwater/broker';
import type { FaultProxy } from '../fault/proxy.js';
import type { Fleet } from '../fleet/fleet.js';
import type { FleetOptions, FleetStats } from '../fleet/types.js';
import type { ControlAdapter } from './control.js';
import type { BrokerEnv } from './environment.js';
import type { PostgresBackend } from './postgres-backend.js';
import type { QosProbe } from './qos-probe.js';

/** `on`: Breakwater's defaults. `off`: the scenario's weakened configuration (see `weakened`). */
export type Protections = 'on' | 'off';

/** The incident types of DESIGN.md §1/§6, plus the auth-backend storm and the reboot storm. */
export type ScenarioIncident =
  | 'auth-backend-storm'
  | 'reboot-storm'
  | 'bad-firmware-push'
  | 'mass-disconnect'
  | 'security'
  | 'data-quality'
  | 'capacity-cost';

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
export interface BrokerSpec {
  /** Guard config for the device listener (`mqtt`); null: no guard (anonymous, full access). */
  guard: Record<string, unknown> | null;
  /** Admission config; null: no admission gate at all (protections off). */
  admission: AdmissionConfigInput | null;
  /** Needs PostgreSQL at 127.0.0.1:5432 for the device credentials. */
  postgres: boolean;
  /** Seed the guard's known-good store with every device, this long ago (ms). */
  seedKnownGoodAgeMs?: number;
}

export interface ScenarioPlan {
  broker: BrokerSpec;
  /** Fleet options except target and device count. */
  fleet: Omit<FleetOptions, 'target' | 'devices'>;
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

export interface AlertRecord {
  at: number;
  /** Seconds since t = 0. */
  t: number;
  ruleId: string;
  name: string;
  state: 'firing' | 'resolved';
  severity: string;
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
}

export interface ScenarioDefinition {
  name: string;
  title: string;
  incident: ScenarioIncident;
  /** One paragraph: what is rehearsed and what Breakwater must do. */
  summary: string;
  /** What `--protections off` changes in this scenario. */
  weakened: string;
  /** Full scale. */
  defaults: { devices: number; durationS: number };
  /** The in-process broker is required (the fault needs its internals, e.g. its auth backend). */
  requiresInProcess: boolean;
  build(params: ScenarioParams): ScenarioPlan;
}
