/** An in-memory FleetBroker for OTA API tests: records publishes, plays device reports. */
import type { FleetBroker, FleetMessageHandler, FleetPresenceListener } from '../src/fleet-broker.js';

export interface Published {
  seq: number;
  topic: string;
  payload: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export class MemoryFleet implements FleetBroker {
  readonly published: Published[] = [];
  readonly retained = new Map<string, string>();
  readonly connected = new Set<string>();
  readonly revocations = null;
  readonly #subs = new Set<{ filter: string; handler: FleetMessageHandler }>();

  async publish(m: {
    topic: string;
    payload: Buffer | string;
    qos: 0 | 1 | 2;
    retain?: boolean;
  }): Promise<void> {
    const payload = typeof m.payload === 'string' ? m.payload : m.payload.toString('utf8');
    this.published.push({
      seq: this.published.length,
      topic: m.topic,
      payload,
      qos: m.qos,
      retain: m.retain === true,
    });
    if (m.retain) {
      if (payload === '') this.retained.delete(m.topic);
      else this.retained.set(m.topic, payload);
    }
  }

  subscribe(filter: string, handler: FleetMessageHandler): () => void {
    const sub = { filter, handler };
    this.#subs.add(sub);
    return () => this.#subs.delete(sub);
  }

  onPresence(_l: FleetPresenceListener): () => void {
    return () => {};
  }

  disconnectClient(): boolean {
    return false;
  }

  async purgePublishedBy(): Promise<{ retained: number; wills: number }> {
    return { retained: 0, wills: 0 };
  }

  connectedClientIds(): string[] {
    return [...this.connected];
  }

  /** A device publishes on a topic (publisherId defaults to the device itself). */
  deviceSays(topic: string, body: unknown, publisherId?: string | null): void {
    const from = publisherId === undefined ? (topic.split('/')[1] ?? null) : publisherId;
    const payload = Buffer.from(JSON.stringify(body));
    for (const s of this.#subs) if (matches(s.filter, topic)) s.handler(topic, payload, from);
  }

  /** The latest OTA job (parsed) published to a device, or null. */
  jobsFor(deviceId: string): Array<Record<string, unknown>> {
    return this.published
      .filter((p) => p.topic === `$fleet/${deviceId}/ota` && p.payload !== '')
      .map((p) => JSON.parse(p.payload) as Record<string, unknown>)
      .filter((j) => j.halt !== true && j.cancel !== true);
  }

  report(deviceId: string, jobId: string, status: string, extra: Record<string, unknown> = {}): void {
    this.deviceSays(`$fleet/${deviceId}/ota/status`, {
      jobId,
      campaignId: jobId.split('.')[0],
      version: 'x',
      status,
      at: new Date().toISOString(),
      ...extra,
    });
  }
}
