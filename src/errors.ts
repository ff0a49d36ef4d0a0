/**
 * One error type for the whole service. Every failure that reaches a caller carries a stable
 * `code` from the closed list below; tests and clients match on the code, never on the message.
 * `retriable` tells an HTTP client (5xx + Retry-After) or the consumer (back off, don't commit)
 * that the same input may succeed later.
 */
export const ERROR_CODES = {
  // request problems (4xx): never retriable as-is
  unauthorized: { status: 401, retriable: false },
  forbidden: { status: 403, retriable: false },
  not_found: { status: 404, retriable: false },
  idempotency_conflict: { status: 409, retriable: false },
  /** the event carries an identity of a person erased for this tenant (docs/PRIVACY.md); lifted only by an operator */
  suppressed: { status: 409, retriable: false },
  payload_too_large: { status: 413, retriable: false },
  unsupported_media_type: { status: 415, retriable: false },
  bad_request: { status: 400, retriable: false },
  validation_failed: { status: 422, retriable: false },
  rate_limited: { status: 429, retriable: true },
  // infrastructure problems (5xx): the same request may succeed later
  kafka_unavailable: { status: 503, retriable: true },
  schema_registry_unavailable: { status: 503, retriable: true },
  state_store_unavailable: { status: 503, retriable: true },
  clickhouse_unavailable: { status: 503, retriable: true },
  timeout: { status: 503, retriable: true },
  /** the process is draining (SIGTERM); another instance, or this one restarted, will answer */
  shutting_down: { status: 503, retriable: true },
  internal_error: { status: 500, retriable: true },
  // start-up and configuration problems
  config_invalid: { status: 500, retriable: false },
  topic_misconfigured: { status: 500, retriable: false },
  contract_incompatible: { status: 500, retriable: false },
} as const satisfies Record<string, { status: number; retriable: boolean }>

export type ErrorCode = keyof typeof ERROR_CODES

export interface ErrorDetail {
  /** JSON pointer into the request body, e.g. `/properties/amount` */
  pointer: string
  code: string
  message: string
}

export class CdpError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly retriable: boolean
  readonly details: ErrorDetail[] | undefined
  /** seconds a client should wait before retrying (5xx, 429) */
  readonly retryAfter: number | undefined

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; details?: ErrorDetail[]; retryAfter?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'CdpError'
    this.code = code
    this.status = ERROR_CODES[code].status
    this.retriable = ERROR_CODES[code].retriable
    this.details = opts.details
    this.retryAfter = opts.retryAfter
  }
}

export function isCdpError(err: unknown): err is CdpError {
  return err instanceof CdpError
}

/**
 * Says what a foreign library's error means for us: the code to wrap it in, or undefined when
 * it is not ours to reinterpret (a bad SQL statement stays the original error). Each backend
 * folder owns one (kafka/errors.ts, clickhouse/errors.ts, state/errors.ts, avro/codec.ts).
 */
export type ForeignClassifier = (err: unknown) => ErrorCode | undefined

export interface WrapOptions { retryAfter?: number }

/**
 * The one way a foreign error becomes a CdpError. A CdpError passes through unchanged; otherwise
 * `classify` (a fixed code, or a backend's classifier) decides the code and the message names
 * the operation (`what`). With a classifier that declines, the original error comes back.
 */
export function wrapForeign(err: unknown, what: string, classify: ErrorCode | ((err: unknown) => ErrorCode), opts?: WrapOptions): CdpError
export function wrapForeign(err: unknown, what: string, classify: ForeignClassifier, opts?: WrapOptions): unknown
export function wrapForeign(err: unknown, what: string, classify: ErrorCode | ForeignClassifier, opts: WrapOptions = {}): unknown {
  if (err instanceof CdpError) return err
  const code = typeof classify === 'function' ? classify(err) : classify
  if (code === undefined) return err
  const reason = err instanceof Error ? err.message : String(err)
  return new CdpError(code, `${what}: ${reason}`, { cause: err, ...(opts.retryAfter === undefined ? {} : { retryAfter: opts.retryAfter }) })
}
