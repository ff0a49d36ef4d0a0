/**
 * Analyst SQL in a process that does not own ClickHouse: `serve --role api` with a ClickHouse
 * server (`clickhouse.url`, CLICKHOUSE_URL). The consumers own the schema (they run the
 * migrations and create the masking views at start); this process only reads, through the same
 * runner (src/clickhouse/analyst.ts: guard, tenant filter, limits, masked PII) as embedded mode.
 *
 * The runner is made on the first query and again after a failure, so an API started before
 * any consumer answers 503 clickhouse_unavailable until a consumer has created the schema, then
 * works without a restart. Embedded chDB belongs to one process: there `--role api` has no query
 * route (analysts go through the process that runs the consumer).
 */
import { analystQueryRunner, createClickHouse, type AnalystQueryRunner } from '../clickhouse/index.js'
import { maskedDatabase } from '../clickhouse/analyst.js'
import { CdpError } from '../errors.js'
import type { QueryRunner } from '../http/routes/query.js'
import type { Shared } from './shared.js'

export function remoteAnalyst(shared: Shared): QueryRunner | undefined {
  const { config, res, contracts } = shared
  if (config.clickhouse.url === undefined) return undefined
  const client = createClickHouse(config)
  res.add('clickhouse-query', () => client.close())
  let runner: Promise<AnalystQueryRunner> | undefined
  const ready = async (): Promise<AnalystQueryRunner> => {
    const rs = await client.query({
      query: 'SELECT count() AS n FROM system.tables WHERE database = {mdb:String} AND name = \'events\'',
      query_params: { mdb: maskedDatabase(config.clickhouse.database) }, format: 'JSONEachRow',
    })
    const [row] = await rs.json<{ n: string | number }>()
    if (Number(row?.n ?? 0) === 0) {
      throw new CdpError('clickhouse_unavailable', `the analyst views in ${maskedDatabase(config.clickhouse.database)} do not exist yet: ` +
        'a consumer (serve --role consumer) creates them when it starts', { retryAfter: 5 })
    }
    return analystQueryRunner(client, config, contracts, { createViews: false })
  }
  const get = (): Promise<AnalystQueryRunner> => (runner ??= ready().catch((err: unknown) => {
    runner = undefined
    throw err instanceof CdpError ? err : new CdpError('clickhouse_unavailable', `ClickHouse at ${config.clickhouse.url} cannot serve queries: ${(err as Error).message}`, { cause: err, retryAfter: 5 })
  }))
  const query: QueryRunner = async (req) => (await get())(req)
  query.cancelAll = async () => { if (runner !== undefined) await (await runner.catch(() => undefined))?.cancelAll() }
  return query
}
