/**
 * `cdp clickhouse-gateway [--port N] [--path DIR]`: serve one embedded chDB data dir over
 * ClickHouse's HTTP interface on 127.0.0.1, so several cdp processes (API, consumers, tests,
 * an analyst's client) can share it through CLICKHOUSE_URL. A development and test adapter:
 * production runs a ClickHouse server. See docs/CLICKHOUSE-GATEWAY.md.
 *
 * Prints one line with the URL once it listens (`--port 0` picks a free port), runs until
 * SIGTERM or SIGINT, then finishes requests in flight and releases the data dir.
 */
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { Config } from '../config/index.js'
import { CdpError } from '../errors.js'
import { createLogger } from '../observability/logger.js'
import { startClickHouseGateway, type ClickHouseGateway } from '../clickhouse/http-gateway.js'

export async function clickhouseGatewayCommand(config: Readonly<Config>, args: string[], out: (line: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: { port: { type: 'string', default: '8123' }, path: { type: 'string' } } })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) { out(`--port must be 0..65535, got ${values.port}`); return 2 }
  const path = resolve(values.path ?? config.clickhouse.chdbPath)
  const log = createLogger(config, 'cdp-clickhouse-gateway')
  mkdirSync(path, { recursive: true })
  let gateway: ClickHouseGateway
  try {
    gateway = await startClickHouseGateway({ path, port, log })
  } catch (err) {
    throw new CdpError('clickhouse_unavailable',
      `cannot start the ClickHouse gateway on 127.0.0.1:${port} with chDB at ${path}: ${(err as Error).message} ` +
      '(is another process using the data dir or the port?)', { cause: err })
  }
  out(`clickhouse-gateway: listening on ${gateway.url} with chDB at ${path} (set CLICKHOUSE_URL=${gateway.url})`)
  const signal = await new Promise<string>((done) => {
    process.once('SIGTERM', () => done('SIGTERM'))
    process.once('SIGINT', () => done('SIGINT'))
  })
  log.info({ signal }, 'clickhouse gateway: draining')
  await gateway.close()
  return 0
}
