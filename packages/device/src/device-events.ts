/** What a Device reports about itself: its state, counters and events. */
import type { Command } from './commands.js';
import type { ConfigEvent } from './desired-config.js';
import type { OobReport } from './oob.js';
import type { OtaStatusReport } from './ota.js';

export type DeviceState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'auth-blocked' | 'stopped';

export interface DeviceCounters {
  /** Connection attempts started. */
  attempts: number;
  /** Attempts that did not end in a successful CONNACK. */
  failures: number;
  /** Attempts refused for authentication. */
  authFailures: number;
  /** Successful connects. */
  connects: number;
  /** Connections lost after a successful connect. */
  disconnects: number;
  /** Time spent waiting in policy backoff, ms. */
  backoffMs: number;
  /** Time spent waiting with the auth breaker open, ms. */
  authBlockedMs: number;
}

export interface ConnectedEvent {
  url: string;
  sessionPresent: boolean;
  /** Attempts in this connect cycle, including the successful one. */
  attempt: number;
}

export interface DisconnectedEvent {
  url: string;
  /** Reason code of the server's DISCONNECT, if it sent one. */
  reasonCode: number | null;
  reason: 'server-disconnect' | 'connection-lost' | 'planned';
  error: Error | null;
}

export interface ReconnectingEvent {
  /** Wait before the next attempt, ms (policy delay, server hint applied). */
  delayMs: number;
  /** Retry number in the current cycle (1 = first retry). */
  attempt: number;
  /** Why the last attempt or connection ended. */
  cause: 'network' | 'refused' | 'auth' | 'redirect' | 'disconnected' | 'token';
  /** Reason code of the refusal or DISCONNECT, if any. */
  reasonCode: number | null;
  /** The server's `retry-after-ms`, if it sent one. */
  serverHintMs: number | null;
  /** Where the next attempt goes, when a redirect told us. */
  redirectedTo: string | null;
}

export interface AuthBreakerOpenEvent {
  openForMs: number;
  /** Epoch ms of the next attempt. */
  until: number;
  consecutiveFailures: number;
  lastError: Error | null;
}

export interface DeviceEvents {
  state: [state: DeviceState];
  connected: [event: ConnectedEvent];
  disconnected: [event: DisconnectedEvent];
  reconnecting: [event: ReconnectingEvent];
  'auth-breaker-open': [event: AuthBreakerOpenEvent];
  config: [event: ConfigEvent];
  command: [command: Command];
  ota: [status: OtaStatusReport];
  oob: [
    event: { outcome: 'sent' | 'failed' | 'dropped' | 'rejected'; report: OobReport; error: Error | null },
  ];
  /** Emitted only when someone listens: an SDK must never crash its host with an unhandled 'error'. */
  error: [error: Error];
}
