import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/** How a node joins the cluster (`breakwater up --cluster`, config section `cluster:`). */
export interface ClusterOptions {
  /** NATS servers of the cluster, e.g. `nats://10.0.0.1:4222` (several for failover). */
  servers: string[];
  /** Also use the servers the NATS cluster announces (failover beyond `servers`). */
  discoverServers: boolean;
  /** Subject and bucket prefix: several Breakwater clusters can share one NATS. */
  prefix: string;
  /** This node's id (heartbeats, wills); unique per process start. */
  nodeId: string;
  /** JetStream replicas of the message stream and the KV buckets (3 on a 3-server NATS cluster). */
  replicas: number;
  /** How long QoS 1/2 messages stay in the stream for resumes on another node, seconds. */
  streamMaxAgeSec: number;
  /** Heartbeat period, ms. */
  heartbeatMs: number;
  /** A node silent this long is dead: survivors publish its wills. */
  deadAfterMs: number;
  /** Without NATS/JetStream this long, the node evicts its clients (they reconnect elsewhere). */
  isolateAfterMs: number;
  /** This node's MQTT address for other nodes' redirects (MQTT 5 Server Reference), or null. */
  advertise: string | null;
  /**
   * NATS connections for QoS 0 between nodes; QoS 0 is spread over them by topic. One connection
   * is read at most 2 MiB per event-loop turn (libuv), and NATS closes a connection that lets
   * 64 MiB wait (nats-server's max_pending) as a slow consumer: a node receiving a flood needs
   * more than one (the 3-node fan-in bench: one or two slow-consumer closes of node 0 per run with
   * 1 or 2, none with 4). Each distinct filter is a NATS subscription on each of them. Every node
   * of a cluster must use the same number.
   */
  liveConnections: number;
  /** Timeout of one JetStream request (publish ack, KV operation), ms. */
  requestTimeoutMs: number;
  /** A resume on another node replays from this much before the session's watermark, ms (clock skew). */
  replaySlackMs: number;
  /** Ack wait of a shared group's consumer, ms (set when the consumer is created). */
  sharedAckWaitMs: number;
  /** Unacked messages per shared group consumer, cluster-wide (set when the consumer is created). */
  sharedMaxAckPending: number;
  /** Unsettled deliveries (JetStream messages) one node holds per group consumer; more are handed back. */
  sharedInFlightPerNode: number;
  /** A group consumer no node has listened to for this long is removed by JetStream, ms. */
  sharedInactiveMs: number;
  logger?: Logger;
  /** Metrics registry (the broker's): cluster metrics are added to it. */
  registry?: Registry;
}

export const defaultClusterOptions = {
  discoverServers: true,
  prefix: 'bw',
  replicas: 1,
  streamMaxAgeSec: 3600,
  heartbeatMs: 1000,
  deadAfterMs: 5000,
  isolateAfterMs: 3000,
  advertise: null,
  requestTimeoutMs: 3000,
  liveConnections: 4,
  replaySlackMs: 2000,
  sharedAckWaitMs: 5000,
  sharedMaxAckPending: 1024,
  sharedInFlightPerNode: 64,
  sharedInactiveMs: 60_000,
} as const satisfies Partial<ClusterOptions>;
