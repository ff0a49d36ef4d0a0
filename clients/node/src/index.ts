/**
 * @resultfly/cdp-client: send customer events to the ResultFly CDP ingestion API from a backend
 * service. No dependencies beyond Node 20 (global fetch, node:zlib).
 *
 * Retry model: the API is idempotent on (source, externalEventId), so a request whose outcome is
 * unknown (network error, timeout, 5xx) is sent again with the SAME body; a fact that got through
 * the first time comes back as `duplicate` with the original event id. 429 is retried too (nothing
 * was accepted). Other 4xx answers are final. Waits honour Retry-After, otherwise exponential
 * backoff with full jitter; every request has a deadline, after which the result says that the
 * outcome is unknown and that resending the same externalEventId is safe.
 *
 * The client never logs; the API key is only ever put in the Authorization header.
 */
import { gzip } from 'node:zlib'
import { promisify } from 'node:util'
import {
  BATCH_PATH, SINGLE_PATH,
  type AcceptedResult, type BatchItemResult, type CdpEvent, type DuplicateResult, type ErrorBody,
} from './generated.js'

export type { AcceptedResult, BatchItemResult, BatchRequest, BatchResponse, CdpEvent, DuplicateResult, ErrorBody } from './generated.js'
// one type per registered event type (PurchaseCompletedEvent, ...), their union KnownEvent and EventType
export type * from './generated.js'

const gzipAsync = promisify(gzip)

export interface CdpClientOptions {
  /** e.g. https://cdp.internal.example (no trailing path) */
  baseUrl: string
  /** rfcdp_... key with events:write (sendEvent) and events:batch (sendBatch) */
  apiKey: string
  /** one HTTP attempt; default 10 s */
  timeoutMs?: number
  /** all attempts of one request together, waits included; default 60 s */
  deadlineMs?: number
  /** retries after the first attempt; default 8 */
  maxRetries?: number
  /** bodies larger than this are sent with Content-Encoding: gzip; default 16 KiB, Infinity turns it off */
  gzipThresholdBytes?: number
  /** first backoff ceiling; doubles per retry up to backoffMaxMs; defaults 200 ms and 10 s */
  backoffBaseMs?: number
  backoffMaxMs?: number
  /** sendBatch splits larger arrays into requests of this many items (the API's limit); default 500 */
  maxBatchItems?: number
  /** defaults to the global fetch */
  fetch?: typeof fetch
  /** called before each wait between attempts, e.g. to count or log retries (never sees the key) */
  onRetry?: (info: RetryInfo) => void
  /** for tests: the jitter source, defaults to Math.random */
  random?: () => number
}

export interface RetryInfo {
  /** the attempt that failed, from 1 */
  attempt: number
  /** what it got: an HTTP status, or 0 for a network error or timeout */
  httpStatus: number
  reason: string
  delayMs: number
}

/**
 * A request or item that was not accepted. `error_code` is the API's code (validation_failed,
 * idempotency_conflict, unauthorized, rate_limited, ...) or, from the client itself,
 * `outcome_unknown` (deadline or retries used up after answers that leave the outcome open) and
 * `bad_response` (a 2xx answer the client could not read). httpStatus is 0 when no HTTP answer
 * arrived.
 */
export interface ClientErrorResult {
  status: 'error'
  error_code: string
  message: string
  details?: ErrorBody['details']
  httpStatus: number
  /** HTTP attempts made for this request */
  attempts: number
  /** true when sending the same event again (same externalEventId) may still succeed */
  retriable: boolean
}

export type SendResult = AcceptedResult | DuplicateResult | ClientErrorResult

export interface CdpClient {
  sendEvent(event: CdpEvent): Promise<SendResult>
  /** one result per item, in the order given; a request-level failure is repeated for each item of that request */
  sendBatch(items: readonly CdpEvent[]): Promise<SendResult[]>
}

type Attempt =
  | { kind: 'answer'; status: number; body: unknown; retryAfterMs: number | undefined }
  | { kind: 'network'; reason: string }

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Retry-After as delta seconds or an HTTP date; undefined when absent or unreadable */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

function isErrorBody(x: unknown): x is ErrorBody {
  return typeof x === 'object' && x !== null && (x as ErrorBody).status === 'error' && typeof (x as ErrorBody).error_code === 'string'
}

function isSuccess(x: unknown): x is AcceptedResult | DuplicateResult {
  if (typeof x !== 'object' || x === null) return false
  const r = x as { status?: unknown; event_id?: unknown; original_event_id?: unknown }
  return (r.status === 'accepted' && typeof r.event_id === 'string') || (r.status === 'duplicate' && typeof r.original_event_id === 'string')
}

export function createCdpClient(options: CdpClientOptions): CdpClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '')
  if (!/^https?:\/\//.test(baseUrl)) throw new TypeError('baseUrl must start with http:// or https://')
  if (typeof options.apiKey !== 'string' || options.apiKey === '') throw new TypeError('apiKey is required')
  const authorization = `Bearer ${options.apiKey}`
  const timeoutMs = options.timeoutMs ?? 10_000
  const deadlineMs = options.deadlineMs ?? 60_000
  const maxRetries = options.maxRetries ?? 8
  const gzipThreshold = options.gzipThresholdBytes ?? 16 * 1024
  const backoffBase = options.backoffBaseMs ?? 200
  const backoffMax = options.backoffMaxMs ?? 10_000
  const maxBatchItems = options.maxBatchItems ?? 500
  const doFetch = options.fetch ?? globalThis.fetch
  const random = options.random ?? Math.random

  async function attempt(path: string, body: Buffer, gzipped: boolean, ms: number): Promise<Attempt> {
    const headers: Record<string, string> = {
      authorization,
      'content-type': 'application/json',
      accept: 'application/json',
    }
    if (gzipped) headers['content-encoding'] = 'gzip'
    try {
      const res = await doFetch(`${baseUrl}${path}`, { method: 'POST', headers, body: new Uint8Array(body.buffer, body.byteOffset, body.length), signal: AbortSignal.timeout(ms) })
      const text = await res.text()
      let parsed: unknown
      try { parsed = text === '' ? undefined : JSON.parse(text) } catch { parsed = undefined }
      return { kind: 'answer', status: res.status, body: parsed, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) }
    } catch (err) {
      // the message of a fetch failure names the cause (reset, refused, timeout), never the headers
      const e = err as Error & { cause?: { code?: string; message?: string } }
      const reason = e.name === 'TimeoutError' ? `no answer within ${ms} ms` : (e.cause?.code ?? e.cause?.message ?? e.message)
      return { kind: 'network', reason }
    }
  }

  /**
   * Sends one body until an answer is final. Returns the 2xx JSON body, or a ClientErrorResult.
   * The body (and so the externalEventIds in it) is the same on every attempt.
   */
  async function send(path: string, payload: unknown, accept: (status: number, body: unknown) => boolean): Promise<{ ok: true; body: unknown; attempts: number } | { ok: false; error: ClientErrorResult }> {
    const json = Buffer.from(JSON.stringify(payload))
    const gzipped = json.length > gzipThreshold
    const body = gzipped ? await gzipAsync(json) : json
    const deadline = Date.now() + deadlineMs
    // set when some attempt may have reached Kafka: then "not accepted" cannot be claimed
    let uncertain = false
    let last: { status: number; code: string; message: string } = { status: 0, code: 'outcome_unknown', message: 'no attempt was made' }
    let attempts = 0
    for (;;) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) break
      attempts++
      const a = await attempt(path, body, gzipped, Math.min(timeoutMs, remaining))
      let retryAfterMs: number | undefined
      if (a.kind === 'network') {
        uncertain = true
        last = { status: 0, code: 'network_error', message: a.reason }
      } else {
        if (a.status >= 200 && a.status < 300) {
          if (accept(a.status, a.body)) return { ok: true, body: a.body, attempts }
          // a 2xx that does not read as an answer: the request may well have been accepted
          uncertain = true
          last = { status: a.status, code: 'bad_response', message: `unexpected ${a.status} answer` }
        } else if (a.status === 429 || a.status >= 500) {
          if (a.status !== 429) uncertain = true
          const e = isErrorBody(a.body) ? a.body : undefined
          last = { status: a.status, code: e?.error_code ?? `http_${a.status}`, message: e?.message ?? `HTTP ${a.status}` }
          retryAfterMs = a.retryAfterMs
        } else {
          const e = isErrorBody(a.body) ? a.body : undefined
          const error: ClientErrorResult = {
            status: 'error', error_code: e?.error_code ?? `http_${a.status}`, message: e?.message ?? `HTTP ${a.status}`,
            httpStatus: a.status, attempts, retriable: false,
          }
          if (e?.details !== undefined) error.details = e.details
          return { ok: false, error }
        }
      }
      if (attempts > maxRetries) break
      const ceiling = Math.min(backoffMax, backoffBase * 2 ** (attempts - 1))
      const delayMs = retryAfterMs ?? Math.floor(random() * ceiling)
      // a wait that ends after the deadline cannot lead to an answer in time
      if (Date.now() + delayMs >= deadline) break
      options.onRetry?.({ attempt: attempts, httpStatus: last.status, reason: `${last.code}: ${last.message}`, delayMs })
      await sleep(delayMs)
    }
    const error: ClientErrorResult = uncertain
      ? {
          status: 'error', error_code: 'outcome_unknown', httpStatus: last.status, attempts, retriable: true,
          message: `no definitive answer after ${attempts} attempt(s) within ${deadlineMs} ms (last: ${last.code}: ${last.message}); ` +
            'the event(s) may or may not have been accepted, and it is safe to send them again with the same externalEventId',
        }
      : { status: 'error', error_code: last.code, httpStatus: last.status, attempts, retriable: true, message: `${last.message} (gave up after ${attempts} attempt(s)); nothing was accepted, send again later` }
    return { ok: false, error }
  }

  return {
    async sendEvent(event) {
      const r = await send(SINGLE_PATH, event, (status, body) => isSuccess(body) && (status === 202 || status === 200))
      return r.ok ? (r.body as AcceptedResult | DuplicateResult) : r.error
    },

    async sendBatch(items) {
      const out: SendResult[] = []
      for (let at = 0; at < items.length; at += maxBatchItems) {
        const chunk = items.slice(at, at + maxBatchItems)
        const r = await send(BATCH_PATH, { items: chunk }, (status, body) => {
          const results = (body as { results?: unknown } | undefined)?.results
          return status === 200 && Array.isArray(results) && results.length === chunk.length && results.every((x) => isSuccess(x) || isErrorBody(x))
        })
        if (r.ok) {
          for (const x of (r.body as { results: (AcceptedResult | DuplicateResult | ErrorBody)[] }).results) {
            // an item refused inside a 200 answer is final: retrying the same item gets the same answer
            out.push(x.status === 'error' ? { ...x, httpStatus: 200, attempts: r.attempts, retriable: false } : x)
          }
        } else {
          for (let i = 0; i < chunk.length; i++) out.push(r.error)
        }
      }
      return out
    },
  }
}
