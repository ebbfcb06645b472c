import { Counter, Gauge, Registry } from 'prom-client';

/** Per-node cluster metrics (issue 15), added to the broker's registry. */
export class ClusterMetrics {
  readonly forwarded: Counter<'qos'>;
  readonly received: Counter<'kind'>;
  readonly claims: Counter<'result'>;
  readonly takeovers: Counter;
  readonly willsFired: Counter;
  readonly replayed: Counter;
  readonly natsConnected: Gauge;
  readonly natsDisconnects: Counter;
  readonly healthy: Gauge;
  readonly nodesAlive: Gauge;
  readonly natsSubscriptions: Gauge;
  readonly jetstreamErrors: Counter<'op'>;
  readonly sharedHandedBack: Counter<'reason'>;

  constructor(registry: Registry = new Registry()) {
    const registers = [registry];
    this.forwarded = new Counter({
      name: 'breakwater_cluster_forwarded_total',
      help: 'Messages published on this node and sent to the cluster, by QoS',
      labelNames: ['qos'],
      registers,
    });
    this.received = new Counter({
      name: 'breakwater_cluster_received_total',
      help: 'Messages received from other nodes (live, shared: queue group or group consumer, shared_redelivered, replay)',
      labelNames: ['kind'],
      registers,
    });
    this.claims = new Counter({
      name: 'breakwater_cluster_claims_total',
      help: 'Client id ownership claims by this node, by result',
      labelNames: ['result'],
      registers,
    });
    this.takeovers = new Counter({
      name: 'breakwater_cluster_takeovers_total',
      help: 'Local sessions given up because another node claimed the client id',
      registers,
    });
    this.willsFired = new Counter({
      name: 'breakwater_cluster_wills_fired_total',
      help: 'Wills of dead nodes published by this node',
      registers,
    });
    this.replayed = new Counter({
      name: 'breakwater_cluster_replayed_total',
      help: 'Messages replayed from the stream into sessions resumed on this node',
      registers,
    });
    this.natsDisconnects = new Counter({
      name: 'breakwater_cluster_nats_disconnects_total',
      help: 'Times the NATS connection was lost (a server that died, a network cut, or the server closing a slow consumer: what NATS had in flight for this node is lost for QoS 0)',
      registers,
    });
    this.natsConnected = new Gauge({
      name: 'breakwater_cluster_nats_connected',
      help: '1 while this node is connected to NATS',
      registers,
    });
    this.healthy = new Gauge({
      name: 'breakwater_cluster_healthy',
      help: '1 while NATS is connected and JetStream answers (heartbeat write within 3 periods)',
      registers,
    });
    this.nodesAlive = new Gauge({
      name: 'breakwater_cluster_nodes_alive',
      help: 'Nodes with a recent heartbeat, this one included',
      registers,
    });
    this.natsSubscriptions = new Gauge({
      name: 'breakwater_cluster_nats_subscriptions',
      help: 'Distinct filters this node subscribes to on NATS',
      registers,
    });
    this.jetstreamErrors = new Counter({
      name: 'breakwater_cluster_jetstream_errors_total',
      help: 'JetStream operations that failed, by operation',
      labelNames: ['op'],
      registers,
    });
    this.sharedHandedBack = new Counter({
      name: 'breakwater_cluster_shared_handed_back_total',
      help: "QoS 1/2 shared-subscription deliveries this node handed back to the group's consumer (nak), by reason: none_online (the members here are all away: the node stops listening for a while), no_member (none left here, or every queue full), node_full (sharedInFlightPerNode), taken_back (from a client that left), session_ended",
      labelNames: ['reason'],
      registers,
    });
  }
}
