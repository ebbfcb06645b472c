/**
 * CONNACK for an accepted CONNECT (MQTT 5.0 §3.2, MQTT 3.1.1 §3.2). MQTT 5 tells the client the
 * server's limits; v3.1/3.1.1 get constant bytes (no encode per CONNECT in a connect storm).
 */
import type mqtt from 'mqtt-packet';
import type { Connection } from '../connection.js';
import type { AcceptedConnect } from '../engine-context.js';
import type { BrokerLimits } from '../options.js';
import { ReasonCode } from '../reason-codes.js';

/** v3.1/v3.1.1 CONNACK, return code 0: Session Present 0 or 1 [MQTT-3.2.2-1..3]. Never mutated. */
const CONNACK_ACCEPTED = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const CONNACK_SESSION_PRESENT = Buffer.from([0x20, 0x02, 0x01, 0x00]);

export function sendConnack(
  conn: Connection,
  limits: Readonly<BrokerLimits>,
  a: AcceptedConnect,
  sessionPresent: boolean,
): void {
  if (conn.version !== 5) {
    // [MQTT-3.2.2-1..3] v3.1 has no session present flag.
    conn.send(conn.version === 4 && sessionPresent ? CONNACK_SESSION_PRESENT : CONNACK_ACCEPTED);
    return;
  }
  const properties: NonNullable<mqtt.IConnackPacket['properties']> = {
    receiveMaximum: limits.receiveMaximum,
    maximumPacketSize: limits.maxPacketSize,
    retainAvailable: true,
    wildcardSubscriptionAvailable: true,
    subscriptionIdentifiersAvailable: true,
    sharedSubscriptionAvailable: true,
    // Maximum QoS is not sent: absent means 2, and the value 2 may not be sent [MQTT-3.2.2-9].
  };
  if (limits.topicAliasMaximum > 0) properties.topicAliasMaximum = limits.topicAliasMaximum;
  if (a.assignedClientId) properties.assignedClientIdentifier = a.clientId; // [MQTT-3.2.2-16]
  if (a.serverKeepAlive) properties.serverKeepAlive = a.keepalive; // [MQTT-3.2.2-21]
  if (a.expiryCapped) properties.sessionExpiryInterval = a.expiryInterval;
  if (a.responseInformation !== undefined) properties.responseInformation = a.responseInformation; // [MQTT-3.1.2-28]
  if (a.userProperties !== undefined) properties.userProperties = a.userProperties;
  conn.sendPacket({ cmd: 'connack', sessionPresent, reasonCode: ReasonCode.Success, properties });
}
