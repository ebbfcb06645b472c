import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';

/** Where the process is in its life: `/readyz` is 200 only while `ready`. */
/** `degraded`: running but not fit for new clients (a cluster node cut off from NATS, issue 15). */
export type ReadinessState = 'starting' | 'ready' | 'degraded' | 'draining';

export interface BrokerHttpRoutesOptions {
  /** The broker's metrics registry (`broker.metrics.registry`). */
  registry: Registry;
  /** Read on every `/readyz`: ready = broker started and listeners accepting. */
  readiness: () => ReadinessState;
}

/**
 * Operational endpoints for Prometheus and load balancers:
 * - `GET /metrics`: Prometheus text exposition of the broker registry.
 * - `GET /healthz`: 200 while the process is up (liveness; never depends on the broker state, so
 *   an orchestrator does not kill a broker that is merely draining).
 * - `GET /readyz`: 200 when ready, 503 while starting or draining, so a load balancer stops
 *   sending new devices to a node that is shutting down.
 *
 * A plain plugin (not fastify-plugin wrapped): routes are global anyway, and the control plane
 * registers its own plugins on the same instance next to this one.
 */
export const brokerHttpRoutes: FastifyPluginAsync<BrokerHttpRoutesOptions> = async (app, options) => {
  const { registry, readiness } = options;

  app.get('/metrics', async (_request, reply) => {
    const body = await registry.metrics();
    return reply.header('content-type', registry.contentType).send(body);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const state = readiness();
    return reply.code(state === 'ready' ? 200 : 503).send({ status: state });
  });
};
