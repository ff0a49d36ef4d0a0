/**
 * SQL text helpers for statements the service writes itself. Analyst SQL is never inspected as
 * text here: src/clickhouse/guard.ts decides what it does from ClickHouse's own parser.
 */
import { CdpError } from '../errors.js'

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/

/** `name` as a backquoted identifier; refuses anything but [A-Za-z_][A-Za-z0-9_]*. */
export function quoteIdent(name: string): string {
  if (!IDENT.test(name)) throw new CdpError('config_invalid', `not a valid ClickHouse identifier: ${JSON.stringify(name)}`)
  return `\`${name}\``
}
