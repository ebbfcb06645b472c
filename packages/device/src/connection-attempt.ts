/**
 * One connection attempt: its MQTT.js client and what happened to it, the client options it is
 * made with, and how its end is read (reason code, server hint, redirect, error). The loop that
 * decides what to do next is in device.ts.
 */
import type { Socket } from 'node:net';
import type { IClientOptions, IConnackPacket, IDisconnectPacket, MqttClient } from 'mqtt';
import { credentialFields } from './credentials.js';
import type { DeviceOptions } from './device-options.js';
import { DeviceError } from './errors.js';

export interface Attempt {
  client: MqttClient;
  url: string;
  connack: IConnackPacket | null;
  disconnect: IDisconnectPacket | null;
  error: Error | null;
  connected: boolean;
  done: boolean;
  planned: boolean;
  tokenExpiresAt: number | null;
}

const RETRY_AFTER = 'retry-after-ms';

// MQTT 5.0 §3.2.2.2 / §3.14.2.1: "use another server" (temporary) and "server moved" (permanent).
const USE_ANOTHER_SERVER = 0x9c;
const SERVER_MOVED = 0x9d;

/** Reads the `retry-after-ms` user property (last value wins when repeated). */
export function readRetryAfterMs(
  userProperties: Record<string, string | string[]> | undefined,
): number | null {
  const raw = userProperties?.[RETRY_AFTER];
  const v = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  if (v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : null;
}

export function clientOptions(
  o: DeviceOptions,
  protocolVersion: 4 | 5,
  token: string | undefined,
): IClientOptions {
  const opts: IClientOptions = {
    clientId: o.deviceId,
    protocolVersion,
    keepalive: o.keepaliveSec ?? 60,
    connectTimeout: o.connectTimeoutMs ?? 10_000,
    // Our loop decides when to reconnect; MQTT.js must never do it behind our back.
    reconnectPeriod: 0,
    reconnectOnConnackError: false,
    clean: o.cleanStart ?? false,
    // Subscriptions are made by us on every connect; MQTT.js's replay would duplicate them.
    resubscribe: false,
    queueQoSZero: false,
  };
  // `passphrase` is passed through to tls.connect by MQTT.js but missing from its types.
  Object.assign(opts, credentialFields(o.deviceId, o.credentials, token));
  if (protocolVersion === 5) {
    opts.properties = { sessionExpiryInterval: o.sessionExpirySec ?? 86_400 };
  }
  if (o.tls?.ca !== undefined && opts.ca === undefined) opts.ca = o.tls.ca;
  if (o.tls?.rejectUnauthorized !== undefined) opts.rejectUnauthorized = o.tls.rejectUnauthorized;
  if (o.tls?.servername !== undefined) opts.servername = o.tls.servername;
  if (o.will) opts.will = o.will;
  return opts;
}

export function setTcpKeepAlive(client: MqttClient, option: number | false | undefined): void {
  const ms = option ?? 30_000;
  if (ms === false) return;
  // MQTT.js builds the stream synchronously in connect(): a net.Socket for mqtt://, a
  // TLSSocket (also a net.Socket) for mqtts://; websockets have no setKeepAlive. Setting it
  // before the TCP handshake completes is fine: Node applies it once the handle exists.
  const stream = client.stream as unknown as Partial<Socket> | undefined;
  if (typeof stream?.setKeepAlive === 'function') stream.setKeepAlive(true, ms);
}

export function destroyClient(client: MqttClient): void {
  try {
    client.end(true);
  } catch {
    // end() on a client whose stream failed to build can throw; the destroy below still runs.
  }
  client.stream?.destroy();
}

/** How an attempt or connection ended, as the server told it (if it did). */
export interface AttemptEnding {
  /** The CONNACK that refused the attempt; null once connected or when none came. */
  refusal: IConnackPacket | null;
  /** Reason code of the server's DISCONNECT or of the refusing CONNACK. */
  code: number | null;
  /** The server's `retry-after-ms`. */
  hintMs: number | null;
  /** An MQTT 5 redirect (0x9C use another server, 0x9D server moved) with its Server Reference. */
  redirect: { reference: string; permanent: boolean } | null;
  error: Error | null;
}

export function attemptEnding(a: Attempt, protocolVersion: 4 | 5): AttemptEnding {
  const v5 = protocolVersion === 5;
  const refusal = a.connected ? null : a.connack;
  const packet = a.disconnect ?? refusal;
  const code =
    a.disconnect?.reasonCode ?? (refusal ? ((v5 ? refusal.reasonCode : refusal.returnCode) ?? null) : null);
  const reference = packet?.properties?.serverReference;
  const redirect =
    v5 && (code === USE_ANOTHER_SERVER || code === SERVER_MOVED) && reference
      ? { reference, permanent: code === SERVER_MOVED }
      : null;
  const error =
    a.error ??
    (code !== null && code !== 0
      ? new DeviceError(
          a.connected ? 'BW_ERR_DEVICE_CONNECT_FAILED' : 'BW_ERR_DEVICE_CONNECT_REFUSED',
          undefined,
          {
            reasonCode: code,
          },
        )
      : null);
  return { refusal, code, hintMs: readRetryAfterMs(packet?.properties?.userProperties), redirect, error };
}
