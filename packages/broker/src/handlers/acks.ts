/**
 * PUBACK / PUBREC / PUBREL / PUBCOMP (MQTT 5.0 §3.4–3.7, §4.3).
 * Outbound flows (broker → client) end here and free in-flight slots; inbound QoS 2 is released
 * by PUBREL.
 */

import type { Connection } from '../connection.js';
import { completeOutbound, pump } from '../delivery.js';
import type { HandlerContext } from '../engine-context.js';
import { ReasonCode } from '../reason-codes.js';

export function handlePuback(b: HandlerContext, conn: Connection, id: number): void {
  const s = conn.session!;
  const rec = s.inflight?.get(id);
  // An unknown id is ignored: it may be a late duplicate after a redelivery.
  if (rec === undefined || rec.qos !== 1) return;
  completeOutbound(b, s, id, rec);
  pump(b, s);
}

export function handlePubrec(b: HandlerContext, conn: Connection, id: number, rc: number): void {
  const s = conn.session!;
  const rec = s.inflight?.get(id);
  if (rec === undefined || rec.qos !== 2) {
    // [MQTT-4.3.3-?] Answer with PUBREL 0x92 so the client can end its flow.
    b.sendAck(
      conn,
      'pubrel',
      id,
      conn.version === 5 ? ReasonCode.PacketIdentifierNotFound : 0,
      undefined,
      false,
      0,
    );
    return;
  }
  if (rc >= 0x80) {
    // A failed PUBREC ends the flow (MQTT 5.0 §4.3.3); the id is free again.
    completeOutbound(b, s, id, rec);
    pump(b, s);
    return;
  }
  if (rec.state !== 'released') {
    rec.state = 'released';
    if (s.stored) {
      b.storage.updateOutbox(s.clientId, rec.seq, id, 'released');
      b.storageDirty = true;
    }
  }
  // [MQTT-4.3.3-?] Send PUBREL (again, if this PUBREC is a duplicate).
  b.sendAck(conn, 'pubrel', id, ReasonCode.Success, undefined, false, 0);
}

export function handlePubcomp(b: HandlerContext, conn: Connection, id: number): void {
  const s = conn.session!;
  const rec = s.inflight?.get(id);
  if (rec === undefined || rec.qos !== 2) return;
  completeOutbound(b, s, id, rec);
  pump(b, s);
}

export function handlePubrel(b: HandlerContext, conn: Connection, id: number): void {
  const s = conn.session!;
  const known = s.inboundQos2?.delete(id);
  if (conn.carriedQos2?.delete(id) && conn.carriedQos2.size === 0) conn.carriedQos2 = null;
  if (known && s.stored) b.storage.deleteInboundQos2(s.clientId, id);
  // [MQTT-4.3.3-?] PUBCOMP even for an unknown id (v5: 0x92), so the client's flow always ends.
  const rc = known || conn.version !== 5 ? ReasonCode.Success : ReasonCode.PacketIdentifierNotFound;
  b.sendAck(conn, 'pubcomp', id, rc, undefined, false, 0);
}
