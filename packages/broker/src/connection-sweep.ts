/**
 * The per-connection half of the broker's one 1 s sweep (DESIGN.md §3): closed streams that
 * linger, CONNECT timeouts, tarpit holds that are over, keepalive, credential expiry and slow
 * consumers. No connection owns a timer: at 100,000 connections one pass a second is cheaper than
 * 100,000 timers, and timeouts are enforced within a second of their deadline.
 */
import { CLOSE_LINGER_MS, type Connection, ConnState } from './connection.js';
import type { HandlerContext } from './engine-context.js';
import { answerRefusal } from './handlers/connect.js';
import { ReasonCode } from './reason-codes.js';

export function sweepConnection(b: HandlerContext, conn: Connection, now: number): void {
  const state = conn.state;
  if (state === ConnState.Closed) {
    if (now - conn.closedAt >= CLOSE_LINGER_MS && !conn.stream.destroyed) conn.stream.destroy();
    return;
  }
  if (state !== ConnState.Connected) {
    if (now >= conn.deadline && conn.refusal !== null && state === ConnState.Authenticating) {
      // Tarpit hold over: answer the admission refusal (the slot is released at shutdown).
      answerRefusal(b, conn, conn.refusal);
    } else if (now >= conn.deadline) {
      // DESIGN.md §3: a socket that sends no CONNECT in time is destroyed.
      b.logger.info({ remoteAddress: conn.info.remoteAddress }, 'connect timeout');
      conn.destroy('connect_timeout');
    }
    return;
  }
  if (conn.keepaliveMs > 0 && now >= conn.deadline) {
    // [MQTT-3.1.2-22] 1.5 × keepalive without a packet: close, publish the will.
    b.logger.info({ clientId: conn.clientId }, 'keepalive timeout');
    conn.disconnect(ReasonCode.KeepAliveTimeout, 'keepalive timeout', 'keepalive_timeout');
    conn.stream.destroy();
    return;
  }
  if (conn.expiresAt > 0 && now >= conn.expiresAt) {
    // The credentials expired (JWT `exp`): 0xA0 Maximum Connect Time, see ConnectDecision.
    b.logger.info({ clientId: conn.clientId }, 'credentials expired: disconnecting');
    conn.disconnect(ReasonCode.MaximumConnectTime, 'credentials expired', 'credentials_expired');
    conn.stream.destroy();
    return;
  }
  if (conn.blockedSince > 0 && now - conn.blockedSince >= b.limits.drainTimeoutMs) {
    b.logger.warn({ clientId: conn.clientId }, 'slow consumer: socket not writable, closing');
    b.counters.drop('slow_consumer');
    conn.destroy('slow_consumer');
  }
}
