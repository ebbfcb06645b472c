import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Admission-control metrics (issue 3, "Metrics"). Registered into the broker's registry
 * (`BrokerMetrics.registry`) so one `/metrics` scrape shows them next to
 * `breakwater_connection_attempts_total`.
 */
export class AdmissionMetrics {
  readonly refused: Counter<'listener' | 'reason'>;
  readonly handshakesInProgress: Gauge<'listener'>;
  readonly fdUsageRatio: Gauge;
  readonly tarpitSlotsInUse: Gauge;
  readonly flappingBans: Counter<'listener' | 'scope'>;
  readonly overloaded: Gauge;
  readonly eventLoopDelay: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.refused = new Counter({
      name: 'breakwater_admission_refused_total',
      help: 'Connections refused by admission control, by listener and reason (rate, busy, overload, max_connections, fd_pressure, flapping, handshakes)',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.handshakesInProgress = new Gauge({
      name: 'breakwater_handshakes_in_progress',
      help: 'CONNECTs admitted and not yet answered (authentication and session setup in progress)',
      labelNames: ['listener'],
      registers,
    });
    this.fdUsageRatio = new Gauge({
      name: 'breakwater_fd_usage_ratio',
      help: 'Open file descriptors / the process limit, as last sampled (admission refuses accepts at 0.9 by default)',
      registers,
    });
    this.tarpitSlotsInUse = new Gauge({
      name: 'breakwater_tarpit_slots_in_use',
      help: 'Refused connections held open to answer later (tarpit delays and accept-time refusals waiting for CONNECT)',
      registers,
    });
    this.flappingBans = new Counter({
      name: 'breakwater_flapping_bans_total',
      help: 'Flapping bans started, by listener and scope (client_id, address): too many accepted sessions that ended quickly',
      labelNames: ['listener', 'scope'],
      registers,
    });
    this.overloaded = new Gauge({
      name: 'breakwater_admission_overloaded',
      help: 'New CONNECTs refused for event-loop saturation (1) or not (0)',
      registers,
    });
    this.eventLoopDelay = new Gauge({
      name: 'breakwater_admission_event_loop_delay_seconds',
      help: 'Mean event-loop delay over the last admission window, as last read by admission',
      registers,
    });
  }
}
