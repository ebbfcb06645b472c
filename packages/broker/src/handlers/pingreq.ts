/** PINGREQ → PINGRESP [MQTT-3.12.4-1]. The keepalive deadline was already moved by the read. */
import type { Connection } from '../connection.js';

const PINGRESP = Buffer.from([0xd0, 0x00]);

export function handlePingreq(conn: Connection): void {
  conn.send(PINGRESP);
}
