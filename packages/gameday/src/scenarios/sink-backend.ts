/**
 * The sink of `sink-outage`: a real PostgreSQL table (127.0.0.1:5432, database `test`) that the
 * broker's integration writes to through a FaultProxy, so the outage is a real one — every
 * connection reset and new ones refused — and the repair is the database answering again.
 *
 * Schema `bw_gameday_sink_<pid>` (dropped at close), table `telemetry` with a unique `msg_id`
 * (`$id`): the sink inserts with ON CONFLICT DO NOTHING, so what the table holds is exactly the
 * set of distinct messages that reached it, however often a batch was delivered.
 */
import pg from 'pg';
import { FaultProxy } from '../fault/proxy.js';
import { PG } from './postgres-backend.js';

export const SINK_NAME = 'warehouse';
export const SINK_RULE = 'telemetry-to-warehouse';

export class SinkBackend {
  readonly schema = `bw_gameday_sink_${process.pid}`;
  readonly proxy = new FaultProxy({
    listen: { host: '127.0.0.1', port: 0 },
    target: { host: PG.host, port: PG.port },
  });
  readonly #admin = new pg.Client(PG);
  #port = 0;

  async create(): Promise<void> {
    await this.#admin.connect();
    await this.#admin.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    await this.#admin.query(`CREATE SCHEMA ${this.schema}`);
    await this.#admin.query(
      `CREATE TABLE ${this.schema}.telemetry (msg_id bigint PRIMARY KEY, device text NOT NULL, seq bigint, body jsonb NOT NULL, received_at timestamptz NOT NULL, inserted_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    );
    this.#port = (await this.proxy.start()).port;
  }

  /** The `integration:` config section: one PostgreSQL sink through the proxy, one rule. */
  integrationConfig(maxPerSec: number, filter: string, retryMaxMs: number): Record<string, unknown> {
    return {
      sinks: {
        postgres: {
          [SINK_NAME]: {
            url: `postgres://${PG.user}@127.0.0.1:${this.#port}/${PG.database}`,
            table: `${this.schema}.telemetry`,
            columns: {
              msg_id: '$id',
              device: '$publisher',
              seq: '$json.seq',
              body: '$json',
              received_at: '$receivedAt',
            },
            onConflict: 'ignore',
            batchSize: 500,
            maxPerSec,
            timeoutMs: 2_000,
            retry: { initialMs: Math.min(500, retryMaxMs), maxMs: retryMaxMs },
          },
        },
      },
      rules: [{ id: SINK_RULE, filter, sinks: [SINK_NAME] }],
    };
  }

  /** Distinct (device, seq) telemetry rows, and all rows. */
  async counts(): Promise<{ distinct: number; rows: number }> {
    const r = await this.#admin.query(
      `SELECT count(*)::int AS rows, count(DISTINCT (device, seq))::int AS distinct FROM ${this.schema}.telemetry`,
    );
    return { distinct: r.rows[0].distinct as number, rows: r.rows[0].rows as number };
  }

  async close(): Promise<void> {
    await this.proxy.close().catch(() => {});
    await this.#admin.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`).catch(() => {});
    await this.#admin.end().catch(() => {});
  }
}
