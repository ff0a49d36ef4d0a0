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

/** Expected outcomes travel as values; only infrastructure trouble is thrown. */
export type Result<T, E = CdpError> = { ok: true; value: T } | { ok: false; error: E }
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value })
export const fail = <E>(error: E): Result<never, E> => ({ ok: false, error })
