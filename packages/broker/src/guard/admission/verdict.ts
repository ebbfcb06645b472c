import type { IConnackPacket } from 'mqtt-packet';
import { ConnackReturnCode, ReasonCode } from '../../reason-codes.js';

/** Why admission refused. Also the `reason` label of `breakwater_admission_refused_total`. */
export const RefusalReason = {
  /** A token bucket (listener or global) is empty. */
  Rate: 'rate',
  /** The gate is closed (broker stopping). */
  Busy: 'busy',
  /** Listener or global connection cap reached. */
  MaxConnections: 'max_connections',
  /** Open FDs passed `fd.refuseRatio` of the process limit. */
  FdPressure: 'fd_pressure',
  /** The client id or source address is banned: too many accepted sessions that ended quickly. */
  Flapping: 'flapping',
  /** The event loop is saturated (admission.overload). */
  Overload: 'overload',
  /** Too many CONNECTs admitted and not yet answered. */
  Handshakes: 'handshakes',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/** Which limit refused: for logs; the metric label stays `reason` to keep cardinality low. */
export type RefusalScope = 'listener' | 'global' | 'client_id' | 'address' | 'process';

export interface AdmissionRefusal {
  ok: false;
  reason: RefusalReason;
  scope: RefusalScope;
  /** MQTT 5 CONNACK reason: ConnectionRateExceeded (0x9F) for rate/flapping, ServerBusy (0x89) for capacity. */
  reasonCode: number;
  /** Human-readable, sent as the v5 Reason String. */
  reasonString: string;
  /** Jittered retry hint, sent as the v5 user property `retry-after-ms`. */
  retryAfterMs: number;
  /**
   * 0: answer now (or, for an accept-time refusal, destroy the socket now — no slot was free).
   * > 0: the caller holds one tarpit slot and MUST call `AdmissionGate.releaseTarpitSlot()` exactly
   * once when it lets go of the socket. From `onConnect`: wait this long, then write
   * `refusalConnack()` and end the socket. From `onAccept`: wait at most this long for the CONNECT,
   * answer it with `refusalConnack()` (destroy the socket if no CONNECT came).
   */
  tarpitMs: number;
}

export type AdmissionVerdict = { ok: true } | AdmissionRefusal;

/** The one accepting verdict; shared so the hot path allocates nothing when admitting. */
export const ADMITTED: AdmissionVerdict = Object.freeze({ ok: true as const });

/** The user property carrying the retry hint (DESIGN.md §3, read by the device SDK). */
export const RETRY_AFTER_PROPERTY = 'retry-after-ms';

/**
 * The CONNACK that answers a refusal, ready for the engine to write (mqtt-packet shape).
 * MQTT 5: the reason code (0x9F or 0x89), a Reason String and the user property `retry-after-ms`.
 * MQTT 3.1/3.1.1 (protocolVersion 3 or 4): return code 3, "server unavailable" — the only load
 * refusal those versions have (v3.1.1 §3.2.2.3); Session Present is 0 with a non-zero return code
 * [MQTT-3.2.2-4], and in v5 with a reason code >= 0x80 [MQTT-3.2.2-6].
 */
export function refusalConnack(verdict: AdmissionRefusal, protocolVersion: number): IConnackPacket {
  if (protocolVersion >= 5) {
    return {
      cmd: 'connack',
      sessionPresent: false,
      reasonCode: verdict.reasonCode,
      properties: {
        reasonString: verdict.reasonString,
        userProperties: { [RETRY_AFTER_PROPERTY]: String(verdict.retryAfterMs) },
      },
    };
  }
  return { cmd: 'connack', sessionPresent: false, returnCode: ConnackReturnCode.ServerUnavailable };
}

/** The MQTT 5 reason code for a refusal reason. */
export function reasonCodeFor(reason: RefusalReason): number {
  return reason === RefusalReason.Rate || reason === RefusalReason.Flapping
    ? ReasonCode.ConnectionRateExceeded
    : ReasonCode.ServerBusy;
}

/**
 * Backlog hygiene (issue 3): a socket that closed while its CONNECT waited in the read buffer or
 * behind TLS must not cost rate credit, a handshake slot or a backend call. The engine calls
 * `onConnect` only when this is true for the socket at the moment the CONNECT is handled.
 */
export function isSocketLive(socket: {
  destroyed: boolean;
  readableEnded?: boolean;
  writable?: boolean;
}): boolean {
  return !socket.destroyed && socket.readableEnded !== true && socket.writable !== false;
}
