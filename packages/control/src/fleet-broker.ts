/**
 * What the control plane needs from the broker it runs beside. The kill switches act through
 * this interface only: `brokerFleet()` adapts the in-process Broker (+ Guard), which is how
 * `breakwater up` and the end-to-end tests run; a remote adapter could implement it over NATS
 * later without touching the control plane.
 */
import type {
  AuthzExplanation,
  AuthzQuery,
  AuthzRule,
  AuthzRulesView,
  Broker,
  Guard,
  RevocationEntry,
  SessionSummary,
} from '@breakwater/broker';

export interface FleetPresenceListener {
  connected(clientId: string, at: number): void;
  disconnected(clientId: string, at: number, reason: string): void;
  /**
   * The client's full session queue dropped messages: at most one call per client every 10 s,
   * with the counts by reason since the previous one (broker queue-drops.ts). Kept in the
   * device's event history (devices/presence.ts).
   */
  messagesDropped?(clientId: string, at: number, dropped: Readonly<Record<string, number>>): void;
}

export type FleetMessageHandler = (topic: string, payload: Buffer, publisherId: string | null) => void;

export interface FleetBroker {
  /** Publish as the server (retained config, OTA jobs). Resolves when the broker has it durably. */
  publish(message: {
    topic: string;
    payload: Buffer | string;
    qos: 0 | 1 | 2;
    retain?: boolean;
  }): Promise<void>;
  /** In-process subscription to what devices publish (wildcards allowed). Returns the remover. */
  subscribe(filter: string, handler: FleetMessageHandler): () => void;
  /** Connect/disconnect events. Returns the remover. */
  onPresence(listener: FleetPresenceListener): () => void;
  /** Ends a live session (MQTT 5: DISCONNECT with `reasonCode`). false when it is not connected. */
  disconnectClient(clientId: string, reasonCode: number, reasonString?: string): boolean;
  /** Drops the client's pending will and deletes the retained messages it published. */
  purgePublishedBy(clientId: string): Promise<{ retained: number; wills: number }>;
  /**
   * The guard's revocation denylist (refuses reconnects, ends live sessions). null when the broker
   * runs without authentication: revocation can then only end live sessions, since any client
   * could claim any id anyway.
   */
  readonly revocations: FleetRevocations | null;
  /** Ids of the clients connected now. */
  connectedClientIds(): string[];
  /** The broker's session of this client (subscriptions, queue); null when it holds none. */
  sessionSummary?(clientId: string): SessionSummary | null;
  /**
   * The guard's authorization rules (issue 13: /api/v1/authz). null or absent when the broker runs
   * without a guard.
   */
  readonly authz?: FleetAuthz | null;
}

/** The live authorization rules and their explanation (Guard implements it). */
export interface FleetAuthz {
  authzRules(): AuthzRulesView;
  replaceAuthzRules(rules: readonly AuthzRule[], by: string): AuthzRulesView;
  explainAuthz(q: AuthzQuery): AuthzExplanation & { listener: string };
}

export interface FleetRevocations {
  revoke(entry: RevocationEntry): void;
  unrevoke(entry: RevocationEntry): void;
  /** The client ids whose live sessions `revoke(entry)` would end (Guard.sessionsMatching). */
  sessionsMatching?(entry: RevocationEntry): string[];
}

/** The in-process adapter. */
export function brokerFleet(broker: Broker, guard: Guard | null = null): FleetBroker {
  return {
    publish: (m) =>
      broker.publish({
        topic: m.topic,
        payload: typeof m.payload === 'string' ? Buffer.from(m.payload) : m.payload,
        qos: m.qos,
        retain: m.retain === true,
      }),
    subscribe: (filter, handler) => broker.tap(filter, handler),
    onPresence: (l) =>
      broker.addObserver({
        clientConnected: (id, _info, at) => l.connected(id, at),
        clientDisconnected: (id, reason, at) => l.disconnected(id, at, reason),
        messagesDropped: (r) => l.messagesDropped?.(r.clientId, r.at, r.dropped),
      }),
    disconnectClient: (id, rc, rs) => broker.disconnectClient(id, rc, rs),
    purgePublishedBy: (id) => broker.purgePublishedBy(id),
    revocations: guard,
    authz: guard,
    connectedClientIds: () => broker.connectedClientIds(),
    sessionSummary: (clientId) => broker.sessionSummary(clientId),
  };
}
