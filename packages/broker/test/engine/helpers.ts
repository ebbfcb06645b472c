import type { Packet } from '@breakwater/testkit';
import { RawClient, type TestBroker } from '@breakwater/testkit';

/** Raw clients opened by a test file, closed in after(). */
export class ClientPool {
  readonly clients: RawClient[] = [];
  constructor(private readonly tb: () => TestBroker) {}

  async open(version = 4): Promise<RawClient> {
    const c = await RawClient.connect(this.tb().port, { protocolVersion: version });
    this.clients.push(c);
    return c;
  }

  /** Open and CONNECT; throws unless the CONNACK accepts. */
  async connected(clientId: string, version = 4, extra: Record<string, unknown> = {}): Promise<RawClient> {
    const c = await this.open(version);
    const ack = await c.connect({ clientId, protocolVersion: version as 4, ...extra });
    const code = version === 5 ? ack.reasonCode : ack.returnCode;
    if (code !== 0) throw new Error(`CONNACK refused: ${code}`);
    return c;
  }

  async closeAll(): Promise<void> {
    for (const c of this.clients) await c.end();
    this.clients.length = 0;
  }
}

export async function subscribe(
  c: RawClient,
  topic: string,
  qos: 0 | 1 | 2 = 0,
  extra: Record<string, unknown> = {},
  properties?: Record<string, unknown>,
): Promise<number[]> {
  const messageId = Math.floor(Math.random() * 60000) + 1;
  c.send({
    cmd: 'subscribe',
    messageId,
    subscriptions: [{ topic, qos, ...extra }],
    ...(properties ? { properties } : {}),
  } as Packet);
  const ack = (await c.next('suback')) as { granted: number[]; messageId: number };
  if (ack.messageId !== messageId) throw new Error('suback id mismatch');
  return ack.granted;
}

export function publish(
  c: RawClient,
  topic: string,
  payload: string | Buffer,
  qos: 0 | 1 | 2 = 0,
  extra: Record<string, unknown> = {},
): void {
  c.send({
    cmd: 'publish',
    topic,
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
    qos,
    retain: false,
    dup: false,
    ...(qos > 0 ? { messageId: 1 } : {}),
    ...extra,
  } as Packet);
}

/** Poll a condition with a bounded deadline (for state that has no event). */
export async function eventually(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves true if no packet of that type arrives within a short window (for negative checks). */
export async function nothingReceived(c: RawClient, cmd: Packet['cmd'], windowMs = 150): Promise<boolean> {
  try {
    await c.next(cmd, windowMs);
    return false;
  } catch {
    return true;
  }
}

export async function metricValue(
  tb: TestBroker,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = await tb.metrics.registry.getSingleMetric(name)?.get();
  if (!m) return Number.NaN;
  const v = m.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

/** PINGREQ round trip: everything this client sent before has been processed by the broker. */
export async function sync(c: RawClient): Promise<void> {
  c.send({ cmd: 'pingreq' });
  await c.next('pingresp');
}
