/**
 * `cdp import FILE.ndjson`: a historical backfill through the running service's
 * POST /v1/cdp/events/import, in chunks of lines, each chunk one request.
 *
 * - Report: every rejected line (its line number in FILE, error code, message, details) goes to
 *   the report file as NDJSON.
 * - Resume: after each chunk the last line the service answered for is written to the checkpoint
 *   file (atomically, after the chunk's report entries). A killed import started again with the
 *   same command skips to it; lines between the checkpoint and the kill are sent again and the
 *   service answers those it stored before `duplicate`, so nothing is stored twice. The
 *   checkpoint is removed when the import completes.
 * - Retries: 429, 5xx, an import the service stopped with a retriable code, and network errors
 *   are retried from the first unanswered line, honouring Retry-After, with backoff and a limit.
 * - Progress: lines done, rate and ETA at most once a second.
 */
import { createReadStream, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import type { Config } from '../../config/index.js'
import { ERROR_CODES, type ErrorCode } from '../../errors.js'
import type { Command, Out } from '../command.js'

const USAGE = [
  'usage: cdp import FILE.ndjson [--source S] [--report FILE] [--checkpoint FILE] [--chunk N] [--restart]',
  '  sends one event per line through the running service (POST /v1/cdp/events/import), with the',
  '  same validation and dedup as the batch route; needs CDP_API_KEY with events:batch, CDP_URL',
  '  --source S        source of lines that have none',
  '  --report FILE     rejected lines with their codes, as NDJSON (default FILE.ndjson.rejected.ndjson)',
  '  --checkpoint FILE the last answered line, to resume after an interruption (default FILE.ndjson.checkpoint)',
  '  --chunk N         lines per request (default 1000, at most the service\'s importMaxLines)',
  '  --restart         ignore an existing checkpoint and start from line 1 (lines stored before come back duplicate)',
  '  exit status: 0 every line answered (rejected lines are in the report), 1 stopped (run again to resume), 2 usage',
]

export const importCommand: Command = {
  name: 'import',
  summary: 'bulk import an NDJSON file (historical backfill), resumable',
  usage: USAGE,
  run: (args, { out, config }) => runImport(config(), args, out),
}

interface Checkpoint { file: string; size: number; line: number; accepted: number; duplicate: number; rejected: number }

interface LineResult { line: number; status: string; error_code?: string; message?: string; details?: unknown }
interface Final { done: boolean; error_code?: string; message?: string; retry_after?: number }

const MAX_ATTEMPTS = 8

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?'
  const m = Math.floor(s / 60)
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`
}

async function countLines(file: string): Promise<number> {
  let n = 0
  let last = 10
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (const b of chunk) if (b === 10) n++
    if (chunk.length > 0) last = chunk[chunk.length - 1]!
  }
  return last === 10 ? n : n + 1
}

function writeCheckpoint(path: string, cp: Checkpoint): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(cp))
  renameSync(`${path}.tmp`, path)
}

/** keeps the report entries of lines up to `line` (those after it will be judged again) */
function trimReport(path: string, line: number): void {
  if (!existsSync(path)) return
  const kept = readFileSync(path, 'utf8').split('\n').filter((l) => {
    if (l === '') return false
    try { return (JSON.parse(l) as { line: number }).line <= line } catch { return false }
  })
  writeFileSync(path, kept.length === 0 ? '' : `${kept.join('\n')}\n`)
}

export async function runImport(config: Readonly<Config>, args: string[], out: Out): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: {
      source: { type: 'string' }, report: { type: 'string' }, checkpoint: { type: 'string' },
      chunk: { type: 'string', default: '1000' }, restart: { type: 'boolean', default: false },
    } })
  } catch (err) { out(`import: ${(err as Error).message}`); return 2 }
  const { values, positionals } = parsed
  const file = positionals[0]
  if (file === undefined || positionals.length > 1) { for (const l of USAGE) out(l); return 2 }
  if (!existsSync(file)) { out(`import: no such file ${file}`); return 2 }
  const chunkLines = Number(values.chunk)
  if (!Number.isInteger(chunkLines) || chunkLines < 1) { out('import: --chunk must be a positive integer'); return 2 }
  if (config.client.apiKey === undefined) { out('cdp import needs CDP_API_KEY: a key with the events:batch permission'); return 2 }
  const reportPath = values.report ?? `${file}.rejected.ndjson`
  const cpPath = values.checkpoint ?? `${file}.checkpoint`
  const size = statSync(file).size

  let cp: Checkpoint = { file: resolve(file), size, line: 0, accepted: 0, duplicate: 0, rejected: 0 }
  if (existsSync(cpPath) && !values.restart) {
    const prev = JSON.parse(readFileSync(cpPath, 'utf8')) as Checkpoint
    if (prev.file !== cp.file || prev.size !== size) {
      out(`import: ${cpPath} belongs to ${prev.file} (${prev.size} bytes), not this file (${size} bytes); --restart to start over`)
      return 2
    }
    cp = prev
    trimReport(reportPath, cp.line)
    out(`resuming after line ${cp.line} (checkpoint ${cpPath})`)
  } else {
    writeFileSync(reportPath, '')
  }

  const total = await countLines(file)
  const url = `${config.client.url}/v1/cdp/events/import${values.source === undefined ? '' : `?source=${encodeURIComponent(values.source)}`}`
  const started = Date.now()
  const startLine = cp.line
  let lastProgress = 0
  const progress = (force = false) => {
    const now = Date.now()
    if (!force && now - lastProgress < 1000) return
    lastProgress = now
    const rate = (cp.line - startLine) / Math.max(0.001, (now - started) / 1000)
    const pct = total === 0 ? 100 : (100 * cp.line) / total
    out(`${cp.line}/${total} lines (${pct.toFixed(1)}%)  ${Math.round(rate)} lines/s  ETA ${fmtDuration((total - cp.line) / rate)}  ` +
      `accepted ${cp.accepted}, duplicate ${cp.duplicate}, rejected ${cp.rejected}`)
  }

  /** sends lines (first = their first line number in FILE); returns the last line answered and how it ended */
  const send = async (lines: string[], first: number): Promise<{ answered: number; final?: Final; status?: number; retryAfter?: number; error?: string }> => {
    const text = `${lines.join('\n')}\n`
    const big = text.length > 64 * 1024
    let res: Response
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${config.client.apiKey}`, 'content-type': 'application/x-ndjson',
          ...(big ? { 'content-encoding': 'gzip' } : {}),
        },
        body: big ? gzipSync(text) : text,
      })
    } catch (err) {
      return { answered: first - 1, error: `cannot reach ${config.client.url}: ${(err as Error).message}` }
    }
    if (res.status !== 200) {
      const ra = Number(res.headers.get('retry-after'))
      return { answered: first - 1, status: res.status, error: `HTTP ${res.status}: ${await res.text()}`, ...(Number.isFinite(ra) && ra > 0 ? { retryAfter: ra } : {}) }
    }
    let body: string
    try { body = await res.text() } catch (err) { body = ''; void err }
    let answered = first - 1
    let final: Final | undefined
    const rejects: string[] = []
    for (const l of body.split('\n')) {
      if (l === '') continue
      let o: LineResult & Final
      try { o = JSON.parse(l) as LineResult & Final } catch { break }
      if (typeof o.done === 'boolean') { final = o; break }
      const line = first - 1 + o.line
      answered = line
      if (o.status === 'accepted') cp.accepted++
      else if (o.status === 'duplicate') cp.duplicate++
      else {
        cp.rejected++
        rejects.push(JSON.stringify({ line, error_code: o.error_code, message: o.message, ...(o.details === undefined ? {} : { details: o.details }) }))
      }
    }
    // report entries first: a kill between the two writes re-judges the chunk, and trimReport drops the repeats
    if (rejects.length > 0) appendFileSync(reportPath, `${rejects.join('\n')}\n`)
    // blank lines at the end of the chunk have no result of their own
    if (final?.done === true) answered = first - 1 + lines.length
    return { answered, ...(final === undefined ? { error: 'the answer ended early' } : { final }) }
  }

  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity })
  let lineNo = 0
  let chunk: string[] = []
  let chunkFirst = cp.line + 1
  const flush = async (): Promise<boolean> => {
    let attempt = 0
    while (chunk.length > 0) {
      const r = await send(chunk, chunkFirst)
      if (r.answered >= chunkFirst) {
        chunk = chunk.slice(r.answered - chunkFirst + 1)
        chunkFirst = r.answered + 1
        cp.line = r.answered
        writeCheckpoint(cpPath, cp)
        attempt = 0
        progress()
      }
      if (r.final?.done === true) { chunk = []; break }
      const code = r.final?.error_code
      const retriable = r.status !== undefined ? r.status === 429 || r.status >= 500
        : code !== undefined ? Object.hasOwn(ERROR_CODES, code) && ERROR_CODES[code as ErrorCode].retriable : true
      const why = r.error ?? `${code ?? 'stopped'}: ${r.final?.message ?? ''}`
      if (!retriable || ++attempt >= MAX_ATTEMPTS) {
        out(`import stopped at line ${cp.line + 1}: ${why}`)
        out(`run the same command again to resume (checkpoint ${cpPath})`)
        return false
      }
      const wait = (r.retryAfter ?? r.final?.retry_after ?? 0) * 1000 || Math.min(30_000, 250 * 2 ** attempt)
      out(`retrying from line ${chunkFirst} in ${(wait / 1000).toFixed(1)} s (${why})`)
      await sleep(wait * (0.75 + Math.random() / 2))
    }
    return true
  }
  try {
    for await (const text of rl) {
      lineNo++
      if (lineNo <= cp.line) continue
      chunk.push(text)
      if (chunk.length >= chunkLines && !(await flush())) return 1
      if (chunk.length === 0) chunkFirst = lineNo + 1
    }
    if (!(await flush())) return 1
  } finally {
    rl.close()
  }
  cp.line = lineNo
  progress(true)
  rmSync(cpPath, { force: true })
  out(`import complete: ${cp.accepted} accepted, ${cp.duplicate} duplicate, ${cp.rejected} rejected` +
    (cp.rejected > 0 ? ` (see ${reportPath})` : ''))
  return 0
}
