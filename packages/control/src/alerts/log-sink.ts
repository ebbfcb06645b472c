import type { Logger } from 'pino';
import type { AlertEvent, AlertSink } from './types.js';

/** Writes every alert event to the log: firing critical as error, firing warning as warn, else info. */
export class LogAlertSink implements AlertSink {
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  onAlert(event: AlertEvent): void {
    const level =
      event.state === 'resolved'
        ? 'info'
        : event.severity === 'critical'
          ? 'error'
          : event.severity === 'warning'
            ? 'warn'
            : 'info';
    this.#logger[level](
      {
        alert: event.ruleId,
        state: event.state,
        severity: event.severity,
        incidentType: event.incidentType,
        runbook: event.runbook,
        labels: event.labels,
        value: event.value,
        threshold: event.threshold,
        startedAt: new Date(event.startedAt).toISOString(),
      },
      `alert ${event.state}: ${event.summary}`,
    );
  }
}
