/**
 * `cdp clickhouse-gateway [--port N] [--path DIR] [--token-file FILE]`: serve one embedded chDB
 * data dir over ClickHouse's HTTP interface on 127.0.0.1, so several cdp processes (API,
 * consumers, tests, an analyst's client) can share it through CLICKHOUSE_URL. A development and
 * test tool: production runs a ClickHouse server. See docs/CLICKHOUSE-GATEWAY.md.
 *
 * Once it listens it writes a fresh token to the token file (mode 0600; default
 * `<path>.gateway-token`, next to the data dir) and prints one line with the URL and the file;
 * clients send the token as their password (CLICKHOUSE_PASSWORD). `--port 0` picks a free port.
 * Runs until SIGTERM or SIGINT, then finishes requests in flight, releases the data dir and
 * removes the token file.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { Config } from '../../src/config/index.js'
import { CdpError } from '../../src/errors.js'
import { createLogger } from '../../src/observability/logger.js'
import { startClickHouseGateway, type ClickHouseGateway } from './gateway.js'

export async function clickhouseGatewayCommand(config: Readonly<Config>, args: string[], out: (line: string) => void): Promise<number> {
  const { values } = parseArgs({ args, options: {
    port: { type: 'string', default: '8123' }, path: { type: 'string' }, 'token-file': { type: 'string' },
  } })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) { out(`--port must be 0..65535, got ${values.port}`); return 2 }
  const path = resolve(values.path ?? config.clickhouse.chdbPath)
  const tokenFile = resolve(values['token-file'] ?? `${path}.gateway-token`)
  const log = createLogger(config, 'cdp-clickhouse-gateway')
  mkdirSync(path, { recursive: true, mode: 0o700 })
  let gateway: ClickHouseGateway
  try {
    gateway = await startClickHouseGateway({ path, port, log })
  } catch (err) {
    throw new CdpError('clickhouse_unavailable',
      `cannot start the ClickHouse gateway on 127.0.0.1:${port} with chDB at ${path}: ${(err as Error).message} ` +
      '(is another process using the data dir or the port?)', { cause: err })
  }
  // written only once this gateway owns the data dir, so a second gateway that fails to start
  // never replaces the token of the one running
  try {
    mkdirSync(dirname(tokenFile), { recursive: true, mode: 0o700 })
    writeFileSync(tokenFile, `${gateway.token}\n`, { mode: 0o600 })
    chmodSync(tokenFile, 0o600) // an existing file keeps its mode on write
  } catch (err) {
    await gateway.close()
    throw new CdpError('config_invalid', `cannot write the ClickHouse gateway token to ${tokenFile}: ${(err as Error).message}`, { cause: err })
  }
  out(`clickhouse-gateway: listening on ${gateway.url} with chDB at ${path}; token in ${tokenFile} ` +
    `(set CLICKHOUSE_URL=${gateway.url} CLICKHOUSE_PASSWORD="$(cat ${tokenFile})")`)
  const signal = await new Promise<string>((done) => {
    process.once('SIGTERM', () => done('SIGTERM'))
    process.once('SIGINT', () => done('SIGINT'))
  })
  log.info({ signal }, 'clickhouse gateway: draining')
  await gateway.close()
  rmSync(tokenFile, { force: true })
  return 0
}
