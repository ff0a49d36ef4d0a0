/**
 * Bulk import of NDJSON (one event per line) for historical backfills: `POST /v1/cdp/events/import`
 * and `cdp import`. Each line is judged exactly like a batch item (same envelope and contract
 * checks, same claim-based dedup, same per-item results), in chunks of at most
 * `config.http.maxBatchItems` lines, so memory stays bounded whatever the body size and a
 * re-sent line is answered `duplicate` with its original event id: re-sending after an
 * interruption is safe.
 *
 * Lines are numbered from 1 as they appear in the body (blank lines are skipped but counted),
 * so a client can map each result to its line.
 */
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { CdpError, type ErrorDetail } from '../errors.js'
import { findInexactNumbers, inexactNumberDetail } from './json-numbers.js'
import { propertiesProblems, summarize } from './envelope.js'
import type { ItemResult } from './service.js'

export type ImportLineResult = ItemResult & { line: number }

export interface ImportSummary {
  /** non-blank lines judged */
  lines: number
  accepted: number
  duplicate: number
  rejected: number
  /** the last line number judged (blank lines included) */
  lastLine: number
}

export interface ImportOptions {
  /** judges one chunk of parsed items, results in order (IngestService.ingest for the caller) */
  ingest(items: unknown[]): Promise<ItemResult[]>
  /** charges the caller `n` items against its rate limits; throws CdpError rate_limited */
  charge(n: number): Promise<void>
  /** lines per ingest call */
  chunkLines: number
  /** non-blank lines allowed in one body; beyond: the import stops with validation_failed */
  maxLines: number
  /** a line longer than this is rejected without parsing (too_large) */
  maxLineBytes: number
  maxPropertiesDepth: number
  /** `source` of lines that have none (a backfill of one system's history) */
  defaultSource?: string
}

/** keys that would poison a prototype when the object is merged later (Fastify refuses them too) */
function reviver(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__') throw new SyntaxError('the key "__proto__" is not allowed')
  if (key === 'constructor' && value !== null && typeof value === 'object' && Object.hasOwn(value, 'prototype')) {
    throw new SyntaxError('a "constructor" object with "prototype" is not allowed')
  }
  return value
}

type Parsed = { ok: true; item: unknown } | { ok: false; result: ItemResult }

function rejected(details: ErrorDetail[]): { ok: false; result: ItemResult } {
  return { ok: false, result: { status: 'error', error_code: 'validation_failed', message: summarize(details), details } }
}

/** One line to an item, or its rejection: JSON, size, numbers a double cannot hold, depth. */
export function parseLine(text: string, opts: Pick<ImportOptions, 'maxLineBytes' | 'maxPropertiesDepth' | 'defaultSource'>): Parsed {
  if (Buffer.byteLength(text) > opts.maxLineBytes) {
    return rejected([{ pointer: '', code: 'too_large', message: `line is larger than ${opts.maxLineBytes} bytes` }])
  }
  let item: unknown
  try {
    item = JSON.parse(text, reviver)
  } catch (err) {
    return rejected([{ pointer: '', code: 'invalid_json', message: `line is not valid JSON: ${(err as Error).message}` }])
  }
  const details: ErrorDetail[] = findInexactNumbers(text).map((n) => inexactNumberDetail(n, n.pointer))
  // the item is one level above its properties
  for (const d of propertiesProblems(item, opts.maxPropertiesDepth + 1, '')) if (d.code === 'too_deep') details.push(d)
  if (details.length > 0) return rejected(details)
  if (opts.defaultSource !== undefined && item !== null && typeof item === 'object' && !Array.isArray(item) && !('source' in item)) {
    item = { source: opts.defaultSource, ...item }
  }
  return { ok: true, item }
}

/**
 * Reads `body` line by line and yields one result per non-blank line, in order, then returns the
 * summary. Throws a CdpError when the import cannot go on (Kafka or the store unavailable, rate
 * limited, too many lines, body too large or not readable); results yielded before it stand.
 */
export async function* importNdjson(body: Readable, opts: ImportOptions): AsyncGenerator<ImportLineResult, ImportSummary> {
  const summary: ImportSummary = { lines: 0, accepted: 0, duplicate: 0, rejected: 0, lastLine: 0 }
  const lines = createInterface({ input: body, crlfDelay: Infinity })
  let chunk: { line: number; parsed: Parsed }[] = []
  let lineNo = 0

  async function* flush(): AsyncGenerator<ImportLineResult> {
    const pending = chunk
    chunk = []
    if (pending.length === 0) return
    await opts.charge(pending.length)
    const toJudge = pending.filter((p): p is { line: number; parsed: { ok: true; item: unknown } } => p.parsed.ok)
    const judged = toJudge.length === 0 ? [] : await opts.ingest(toJudge.map((p) => p.parsed.item))
    let k = 0
    for (const p of pending) {
      const r = p.parsed.ok ? judged[k++]! : p.parsed.result
      summary.lines++
      summary.lastLine = p.line
      if (r.status === 'accepted') summary.accepted++
      else if (r.status === 'duplicate') summary.duplicate++
      else summary.rejected++
      yield { line: p.line, ...r }
    }
  }

  try {
    for await (const text of lines) {
      lineNo++
      if (text.trim() === '') continue
      if (summary.lines + chunk.length >= opts.maxLines) {
        // the lines within the limit are judged and answered; the rest is not read
        yield* flush()
        throw new CdpError('validation_failed', `an import body holds at most ${opts.maxLines} lines; send the rest in another request`,
          { details: [{ pointer: '', code: 'too_many_lines', message: `line ${lineNo} is over the limit of ${opts.maxLines} lines` }] })
      }
      chunk.push({ line: lineNo, parsed: parseLine(text, opts) })
      if (chunk.length >= opts.chunkLines) yield* flush()
    }
    yield* flush()
  } finally {
    lines.close()
  }
  return summary
}
