/**
 * CONNECT → CONNACK (MQTT 5.0 §3.1, §3.2; MQTT 3.1.1 §3.1, §3.2).
 *
 * Order (issue 3: accept → admission → authn → authz → session): decode and validate, then
 * admission (`AdmissionGate.onConnect`, live sockets only), then the authentication hook (reading
 * suspended meanwhile, so pipelined packets wait), then session takeover / clean start / resume
 * in the broker.
 */
import { isUtf8 } from 'node:buffer';
import type mqtt from 'mqtt-packet';
import { type Connection, ConnState } from '../connection.js';
import type { AcceptedConnect, HandlerContext } from '../engine-context.js';
import {
  type AdmissionRefusal,
  isSocketLive,
  RETRY_AFTER_PROPERTY,
  RefusalReason,
} from '../guard/admission/verdict.js';
import type { ConnectDecision, ConnectRequest } from '../options.js';
import { OutboundTopicAliases } from '../outbound-aliases.js';
import { connectProtocolLevel, decodeConnect } from '../protocol/codec.js';
import { ReasonCode, toV3ConnackCode } from '../reason-codes.js';
import type { Will } from '../session.js';
import { NEVER_EXPIRES } from '../session.js';
import { isValidTopicName } from '../topics/validate.js';
import { toStoredProperties } from './publish.js';

/** What the broker needs to accept a validated CONNECT. */

export function handleConnect(b: HandlerContext, conn: Connection, frame: Buffer): void {
  b.listenerMetrics(conn.info.listener).attempts.inc();
  const level = connectProtocolLevel(frame);
  if (level !== -1 && level !== 3 && level !== 4 && level !== 5) {
    // [MQTT-3.1.2-2] Unsupported protocol level: CONNACK 0x01 (3.1.1 format), then close.
    conn.version = 4;
    refuse(b, conn, ReasonCode.UnsupportedProtocolVersion, `unsupported protocol level ${level}`);
    return;
  }
  const parsed = decodeConnect(frame);
  if ('error' in parsed) {
    conn.version = level === 5 ? 5 : 4;
    if (level === 5)
      refuse(
        b,
        conn,
        parsed.error === 'protocol' ? ReasonCode.ProtocolError : ReasonCode.MalformedPacket,
        parsed.message,
      );
    else conn.protocolError(ReasonCode.MalformedPacket, `malformed CONNECT: ${parsed.message}`);
    return;
  }
  const p = parsed as mqtt.IConnectPacket;
  const v = p.protocolVersion ?? 4;
  conn.version = v;
  if (conn.refusal !== null) {
    // Refused at accept (connection cap, FD pressure) and held so the refusal can be answered
    // now that the protocol version is known: nothing else is done for this CONNECT.
    answerRefusal(b, conn, conn.refusal);
    return;
  }
  // [MQTT-3.1.2-1] Protocol name "MQTT" for 3.1.1 / 5, "MQIsdp" for 3.1.
  if ((v === 3) !== (p.protocolId === 'MQIsdp')) {
    refuse(b, conn, ReasonCode.UnsupportedProtocolVersion, 'protocol name does not match the protocol level');
    return;
  }
  const props = p.properties;
  let clientId = p.clientId;
  const clean = p.clean !== false;

  if (v === 5 && props !== undefined) {
    if (props.authenticationMethod !== undefined) {
      // No enhanced authentication is offered (MQTT 5.0 §4.12).
      refuse(b, conn, ReasonCode.BadAuthenticationMethod, 'enhanced authentication is not supported');
      return;
    }
    if (props.receiveMaximum === 0) {
      refuse(b, conn, ReasonCode.ProtocolError, 'Receive Maximum 0'); // [MQTT-3.1.2-?] value 0 is a Protocol Error
      return;
    }
    if (props.maximumPacketSize === 0) {
      refuse(b, conn, ReasonCode.ProtocolError, 'Maximum Packet Size 0');
      return;
    }
    if (props.receiveMaximum !== undefined) conn.clientReceiveMaximum = props.receiveMaximum;
    if (props.maximumPacketSize !== undefined) conn.clientMaxPacketSize = props.maximumPacketSize;
    if (props.requestProblemInformation === false) conn.problemInformation = false;
    // Topic aliases toward this client only when it takes them: none at all when its Topic Alias
    // Maximum is absent or 0 [MQTT-3.1.2-27], never above it [MQTT-3.1.2-26].
    const aliasMax = Math.min(props.topicAliasMaximum ?? 0, b.limits.outboundTopicAliasMaximum);
    if (aliasMax > 0)
      conn.outboundAliases = new OutboundTopicAliases(aliasMax, b.limits.outboundTopicAliasMinLength);
  }

  // Client identifier rules [MQTT-3.1.3-5..9].
  if (
    clientId.length > b.limits.maxClientIdLength ||
    clientId.includes('\uFFFD') ||
    clientId.includes('\u0000')
  ) {
    // U+FFFD: mqtt-packet decodes ill-formed UTF-8 to it; treated as ill-formed [MQTT-1.5.4-1].
    refuse(b, conn, ReasonCode.ClientIdentifierNotValid, 'client identifier is not valid');
    return;
  }
  let assigned = false;
  if (clientId === '') {
    if (v === 3 || (v === 4 && !clean)) {
      // [MQTT-3.1.3-8] v3.1.1: an empty id needs CleanSession=1; 3.1 requires 1..23 characters.
      refuse(
        b,
        conn,
        ReasonCode.ClientIdentifierNotValid,
        'empty client identifier requires a clean session',
      );
      return;
    }
    clientId = b.assignClientId(); // [MQTT-3.1.3-6]
    assigned = true;
  }

  // Will (MQTT 5.0 §3.1.2.5, §3.1.3.2).
  let will: Will | null = null;
  if (p.will) {
    const w = p.will;
    if (!isValidTopicName(w.topic)) {
      refuse(b, conn, ReasonCode.TopicNameInvalid, 'will topic is not a valid topic name'); // [MQTT-3.1.3-11]
      return;
    }
    const wp = w.properties;
    if (wp?.responseTopic !== undefined && !isValidTopicName(wp.responseTopic)) {
      // [MQTT-3.3.2-14] A Response Topic (here the will's) must not contain wildcards.
      refuse(b, conn, ReasonCode.ProtocolError, 'will Response Topic is not a valid topic name');
      return;
    }
    const payload = Buffer.from(w.payload as Buffer);
    if (wp?.payloadFormatIndicator === true && !isUtf8(payload)) {
      refuse(b, conn, ReasonCode.PayloadFormatInvalid, 'will payload is not valid UTF-8'); // [MQTT-3.1.3-?]
      return;
    }
    will = {
      topic: w.topic,
      payload,
      qos: w.qos ?? 0,
      retain: w.retain === true,
      properties: v === 5 ? toStoredProperties(wp) : null,
      delaySec: wp?.willDelayInterval ?? 0,
      expirySec: wp?.messageExpiryInterval ?? null,
    };
  }

  // Session expiry: v5 property; v3.1.1 CleanSession=0 → the broker's maximum.
  let requested: number;
  if (v === 5) requested = props?.sessionExpiryInterval ?? 0;
  else requested = clean ? 0 : NEVER_EXPIRES;
  let expiryInterval = requested;
  let expiryCapped = false;
  if (expiryInterval > b.limits.maxSessionExpirySec) {
    expiryInterval = b.limits.maxSessionExpirySec;
    expiryCapped = v === 5;
  }

  // Keepalive [MQTT-3.1.2-21]: v5 Server Keep Alive caps it; v3 clients cannot be told, so not capped.
  let keepalive = p.keepalive ?? 0;
  let serverKeepAlive = false;
  const cap = b.limits.maxKeepaliveSec;
  if (v === 5 && cap > 0 && (keepalive === 0 || keepalive > cap)) {
    keepalive = cap;
    serverKeepAlive = true;
  }

  const accepted: AcceptedConnect = {
    clientId,
    assignedClientId: assigned,
    clean,
    expiryInterval,
    expiryCapped,
    keepalive,
    serverKeepAlive,
    will,
  };
  // Request/response (MQTT 5.0 §4.10): only when asked for [MQTT-3.1.2-28].
  if (v === 5 && props?.requestResponseInformation === true) {
    const info = responseInformation(b.limits.responseInformation, clientId);
    if (info !== null) accepted.responseInformation = info;
  }
  conn.clientId = clientId;
  const hooks = b.hooks;
  const hook = hooks?.authenticate;
  let request: ConnectRequest | null = null;
  if (hook !== undefined) {
    request = { clientId, protocolVersion: v, keepalive: p.keepalive ?? 0, clean, info: conn.info };
    if (p.username !== undefined) request.username = p.username;
    if (p.password !== undefined) request.password = p.password;
  }
  const gate = b.admission;
  if (gate !== null) {
    // Backlog hygiene (issue 3): a socket that closed while its CONNECT waited costs no rate
    // credit, no handshake slot and no backend call.
    if (!isSocketLive(conn.stream)) {
      conn.destroy('closed_before_connect');
      return;
    }
    const local = request !== null && hooks!.verifiesLocally?.(request) === true;
    // The client's own id ('' when the broker assigns one): an assigned id cannot flap.
    const verdict = gate.onConnect(conn.info.listener, p.clientId, conn.info.remoteAddress, {
      verifiesLocally: local,
    });
    if (!verdict.ok) {
      refuseAdmission(b, conn, verdict);
      return;
    }
    conn.handshakePending = true;
  }
  if (hook === undefined || request === null) {
    dropUnauthorizedWill(b, accepted);
    b.acceptConnection(conn, accepted);
    return;
  }
  conn.state = ConnState.Authenticating;
  conn.suspend();
  let result: ConnectDecision | Promise<ConnectDecision>;
  try {
    result = hook(request);
  } catch (err) {
    authFailed(b, conn, err);
    return;
  }
  if (result instanceof Promise) {
    result.then(
      (d) => authDecided(b, conn, accepted, d),
      (err) => authFailed(b, conn, err),
    );
  } else {
    authDecided(b, conn, accepted, result);
  }
}

/**
 * The response topic prefix for a client (`{clientId}` substituted), or null when none is offered:
 * not configured, or a client id that would make it a filter or another client's subtree (the
 * same ids the authorization rules refuse to substitute, guard/authz.ts).
 */
export function responseInformation(template: string, clientId: string): string | null {
  if (template === '') return null;
  if (!template.includes('{clientId}')) return template;
  for (const c of ['/', '+', '#', '\u0000']) if (clientId.includes(c)) return null;
  return template.replaceAll('{clientId}', clientId);
}

function authDecided(
  b: HandlerContext,
  conn: Connection,
  accepted: AcceptedConnect,
  d: ConnectDecision,
): void {
  if (conn.state !== ConnState.Authenticating) {
    // The socket closed while the hook ran: drop everything, but tell the hook that the
    // connection it admitted is gone (it counts admitted connections per client id).
    if (d.ok) b.hooks?.onClientDisconnected?.(accepted.clientId);
    return;
  }
  if (!d.ok) {
    if (!holdLoadRefusal(b, conn, d))
      refuse(b, conn, d.reasonCode, d.reasonString, d.userProperties, d.serverReference);
    return;
  }
  conn.hookAdmitted = true;
  if (d.expiresAt !== undefined) conn.expiresAt = d.expiresAt;
  if (d.userProperties !== undefined) accepted.userProperties = d.userProperties;
  dropUnauthorizedWill(b, accepted);
  b.acceptConnection(conn, accepted);
  // In a cluster the claim is still pending (state stays Authenticating): the broker resumes.
  if (conn.state !== ConnState.Authenticating) conn.resume();
}

/**
 * A will to a topic its client may not publish to is never published (issue 13): it is dropped
 * here, once the client is admitted and its authorization rules are known, and counted. The
 * connection itself is accepted (Mosquitto 2 refuses it with 0x87 instead; a device that loses
 * its will keeps working). `Broker` checks again when the will fires, so a rule change in between
 * applies too.
 */
function dropUnauthorizedWill(b: HandlerContext, accepted: AcceptedConnect): void {
  const will = accepted.will;
  const authorize = b.hooks?.authorizePublish;
  if (will === null || authorize === undefined || authorize(accepted.clientId, will.topic)) return;
  accepted.will = null;
  b.counters.drop('not_authorized');
  b.logger.debug({ clientId: accepted.clientId, topic: will.topic }, 'will to a denied topic dropped');
}

function authFailed(b: HandlerContext, conn: Connection, err: unknown): void {
  b.logger.error({ err, clientId: conn.clientId }, 'authenticate hook failed');
  if (conn.state !== ConnState.Authenticating) return;
  refuse(b, conn, ReasonCode.UnspecifiedError, 'authentication failed');
}

/**
 * Admission said no. With a tarpit hold the answer waits: reading stays suspended and the broker's
 * 1 s sweep answers at `deadline` (no timer per connection; the hold is jittered anyway).
 */
function refuseAdmission(b: HandlerContext, conn: Connection, verdict: AdmissionRefusal): void {
  if (verdict.tarpitMs > 0) {
    conn.refusal = verdict; // holds a tarpit slot until shutdown
    conn.state = ConnState.Authenticating;
    conn.suspend();
    conn.deadline = b.clock.now() + verdict.tarpitMs;
    return;
  }
  answerRefusal(b, conn, verdict);
}

/**
 * Tarpit for refusals decided after admission because the auth backend is busy (0x89) or down
 * (0x88) (issue 11): like admission's own refusals they are answered after a jittered hold, so a
 * fleet on a fixed 1 s retry loop comes back spread out instead of in step. The handshake slot is
 * given back at once (the hold must not crowd out new CONNECTs); the tarpit slot is released at
 * shutdown. False when no hold applies (no gate, tarpit off, slots full): answer now.
 */
function holdLoadRefusal(
  b: HandlerContext,
  conn: Connection,
  d: Extract<ConnectDecision, { ok: false }>,
): boolean {
  const gate = b.admission;
  if (gate === null) return false;
  if (d.reasonCode !== ReasonCode.ServerBusy && d.reasonCode !== ReasonCode.ServerUnavailable) return false;
  const hold = gate.tarpitHold();
  if (hold === 0) return false;
  if (conn.handshakePending) {
    conn.handshakePending = false;
    gate.onHandshakeDone(conn.info.listener);
  }
  const hinted = Number(d.userProperties?.[RETRY_AFTER_PROPERTY]);
  conn.refusal = {
    ok: false,
    reason: RefusalReason.Busy,
    scope: 'process',
    reasonCode: d.reasonCode,
    reasonString: d.reasonString,
    retryAfterMs: Number.isFinite(hinted) && hinted > 0 ? hinted : 5_000,
    tarpitMs: hold,
  };
  conn.deadline = b.clock.now() + hold;
  return true;
}

/**
 * An admission refusal on the wire (DESIGN.md §3): v5 CONNACK 0x9F/0x89 with a reason string and
 * the user property `retry-after-ms`; v3 return code 3. Logged at debug: during a storm there is
 * one per attempt, and `breakwater_admission_refused_total` already counts them.
 */
export function answerRefusal(b: HandlerContext, conn: Connection, verdict: AdmissionRefusal): void {
  refuse(
    b,
    conn,
    verdict.reasonCode,
    verdict.reasonString,
    { [RETRY_AFTER_PROPERTY]: String(verdict.retryAfterMs) },
    undefined,
    true,
  );
}

/**
 * Negative CONNACK, then close: v5 with reason code and reason string [MQTT-3.2.2-?], v3 with the
 * closest return code. The will is never published for a refused connection [MQTT-3.1.4-?].
 * `serverReference` (v5 only) goes with 0x9C Use Another Server / 0x9D Server Moved (§4.11).
 */
export function refuse(
  b: HandlerContext,
  conn: Connection,
  reasonCode: number,
  reasonString: string,
  userProperties?: Record<string, string>,
  serverReference?: string,
  quiet = false,
): void {
  if (conn.state === ConnState.Closed) return;
  const fields = { clientId: conn.clientId || undefined, reasonCode, remoteAddress: conn.info.remoteAddress };
  if (quiet) b.logger.debug(fields, `CONNECT refused: ${reasonString}`);
  else b.logger.info(fields, `CONNECT refused: ${reasonString}`);
  const packet =
    conn.version === 5
      ? {
          cmd: 'connack' as const,
          sessionPresent: false,
          reasonCode,
          properties: {
            reasonString,
            ...(userProperties ? { userProperties } : {}),
            ...(serverReference !== undefined ? { serverReference } : {}),
          },
        }
      : { cmd: 'connack' as const, sessionPresent: false, returnCode: toV3ConnackCode(reasonCode) };
  // Diagnostics are left out if the client's Maximum Packet Size demands it [MQTT-3.2.2-19].
  const buf = conn.encodePacket(packet, conn.version === 5 ? 5 : 4);
  if (buf !== null) conn.send(buf);
  conn.willOnClose = false;
  conn.shutdown('connect_refused', false);
}
