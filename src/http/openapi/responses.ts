/**
 * The error answers each route declares in the OpenAPI document. Every non-2xx answer of the API
 * has the one error body (http/errors.ts); which statuses a route can give depends on the hooks
 * it meets (app.ts's front door: drain, per-address failure limit, content encoding, body
 * parsing) and on its own checks. The fuzz run (test/fuzz/) fails on any status a route answers
 * that is not declared here, so this list is checked against the running app, not only read.
 *
 * These objects are Fastify response schemas too: fast-json-stringify serializes the answers with
 * them, so they stay inline (no $ref) and list every field the error body has.
 */

export const errorBody = {
  type: 'object',
  required: ['status', 'error_code', 'message'],
  properties: {
    status: { type: 'string', enum: ['error'] },
    error_code: { type: 'string', description: 'Stable machine-readable code (src/errors.ts), e.g. validation_failed, rate_limited, kafka_unavailable.' },
    message: { type: 'string' },
    details: {
      type: 'array',
      items: {
        type: 'object',
        required: ['pointer', 'code', 'message'],
        properties: { pointer: { type: 'string', description: 'JSON pointer into the request body' }, code: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
} as const

const retryAfter = { 'Retry-After': { description: 'seconds to wait before retrying', type: 'integer', minimum: 0 } } as const

function err(description: string, headers?: Record<string, unknown>) {
  return { description, ...errorBody, ...(headers === undefined ? {} : { headers }) }
}

/** what every route can answer, whatever it does: the front door's statuses */
export const frontDoorResponses = {
  400: err('bad_request: malformed request (invalid JSON, an empty or NUL body with a JSON content type, corrupt gzip)'),
  415: err('unsupported_media_type: a Content-Type other than application/json, or a Content-Encoding other than gzip or identity'),
  429: err('rate_limited: too many failing requests (400/401/403/404/413/415) from this client address; wait Retry-After seconds', retryAfter),
  500: err('internal_error: an unexpected failure; the request may be retried (for events, with the same externalEventId)', retryAfter),
  503: err('shutting_down: the service is draining; retry after Retry-After (for events, with the same externalEventId)', retryAfter),
}

/** the key check (auth.ts): a route with requireKey */
export const keyResponses = {
  401: err('unauthorized: API key missing, malformed, unknown, revoked or expired'),
  403: err('forbidden: the key lacks the route\'s permission on its kind of key (an operator key, which has no tenant, is refused on every tenant route), or may not send events as this source'),
}

export function tooLarge(limitBytes: number) {
  return { 413: err(`payload_too_large: the body (after gzip decoding) is larger than ${limitBytes} bytes`) }
}

/** for an unexpected case, 408 comes from Node's HTTP server itself, without a body */
export const requestTimeout = {
  408: { description: 'the request did not arrive within the request timeout (Node\'s HTTP server answers, without a body)', type: 'null' },
}

export { err as errorResponse, retryAfter }
