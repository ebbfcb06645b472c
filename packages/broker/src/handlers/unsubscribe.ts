/** UNSUBSCRIBE → UNSUBACK (MQTT 5.0 §3.10, §3.11). */
import type mqtt from 'mqtt-packet';
import type { Connection } from '../connection.js';
import type { HandlerContext } from '../engine-context.js';
import { ReasonCode } from '../reason-codes.js';
import { parseTopicFilter } from '../topics/validate.js';

export function handleUnsubscribe(b: HandlerContext, conn: Connection, p: mqtt.IUnsubscribePacket): void {
  const s = conn.session!;
  if (p.unsubscriptions.length === 0) {
    // [MQTT-3.10.3-2] An UNSUBSCRIBE must contain at least one topic filter.
    conn.protocolError(ReasonCode.ProtocolError, 'UNSUBSCRIBE without topic filters');
    return;
  }
  const codes: number[] = [];
  for (const filter of p.unsubscriptions) {
    const parsed = parseTopicFilter(filter);
    if (!parsed.ok) {
      codes.push(ReasonCode.TopicFilterInvalid);
      continue;
    }
    // [MQTT-3.10.4-1] delete the matching subscription; 0x11 when none existed (v5).
    codes.push(b.removeSubscription(s, filter) ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted);
  }
  // [MQTT-3.10.4-4] UNSUBACK with the same packet id; v3.1.1 has no payload.
  if (conn.version === 5)
    conn.sendPacket({ cmd: 'unsuback', messageId: p.messageId, granted: codes } as mqtt.IUnsubackPacket);
  else conn.sendPacket({ cmd: 'unsuback', messageId: p.messageId } as mqtt.IUnsubackPacket);
}
