/** Client DISCONNECT (MQTT 5.0 §3.14). */
import type mqtt from 'mqtt-packet';
import type { Connection } from '../connection.js';
import type { HandlerContext } from '../engine-context.js';
import { ReasonCode } from '../reason-codes.js';

export function handleDisconnect(b: HandlerContext, conn: Connection, p: mqtt.IDisconnectPacket): void {
  const s = conn.session!;
  const expiry = p.properties?.sessionExpiryInterval;
  if (expiry !== undefined) {
    if (s.expiryInterval === 0 && expiry !== 0) {
      // [MQTT-3.14.2-2] 0 in CONNECT and non-zero in DISCONNECT is a Protocol Error.
      conn.protocolError(ReasonCode.ProtocolError, 'Session Expiry Interval changed from 0 on DISCONNECT');
      return;
    }
    b.setSessionExpiry(s, Math.min(expiry, b.limits.maxSessionExpirySec));
  }
  // [MQTT-3.14.4-3] A normal DISCONNECT discards the will; 0x04 asks for it to be sent.
  conn.willOnClose = conn.version === 5 && p.reasonCode === ReasonCode.DisconnectWithWillMessage;
  conn.shutdown('client_disconnect', conn.willOnClose);
}
