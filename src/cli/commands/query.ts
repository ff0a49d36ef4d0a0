import { parseArgs } from 'node:util'
import type { Config } from '../../config/index.js'
import { ANALYST_FORMATS } from '../../clickhouse/formats.js'
import type { Command, Out } from '../command.js'

const FORMAT_NAMES = Object.keys(ANALYST_FORMATS).join('|')

export const queryCommand: Command = {
  name: 'query',
  summary: 'read-only SQL through the running service',
  usage: [
    `usage: cdp query "<SQL>" [--format ${FORMAT_NAMES}]`,
    '  runs one read-only statement through the running service (POST /v1/cdp/query);',
    '  needs CDP_API_KEY with the query:read permission and CDP_URL when not http://127.0.0.1:8080',
  ],
  run: (args, { out, config }) => query(config(), args, out),
}

async function query(config: Readonly<Config>, args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { format: { type: 'string', default: 'table' } } })
  const sql = positionals.join(' ')
  if (sql.trim() === '') { out(`usage: cdp query "<SQL>" [--format ${FORMAT_NAMES}]`); return 2 }
  const name = (values.format ?? 'table').toLowerCase()
  const format = Object.hasOwn(ANALYST_FORMATS, name) ? ANALYST_FORMATS[name as keyof typeof ANALYST_FORMATS] : undefined
  if (format === undefined) { out(`--format must be one of ${Object.keys(ANALYST_FORMATS).join(', ')}`); return 2 }
  if (config.client.apiKey === undefined) { out('cdp query needs CDP_API_KEY: a key with the query:read permission (cdp keys create --permission query:read)'); return 2 }
  let res: Response
  try {
    res = await fetch(`${config.client.url}/v1/cdp/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${config.client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sql, format }),
    })
  } catch (err) {
    out(`cannot reach the service at ${config.client.url} (is \`cdp serve\` running?): ${(err as Error).message}`)
    return 1
  }
  const text = await res.text()
  if (!res.ok) {
    out(`query failed (HTTP ${res.status}): ${text}`)
    return 1
  }
  process.stdout.write(text.endsWith('\n') || text === '' ? text : text + '\n')
  return 0
}

