/**
 * One error shape for every non-2xx answer (seed §2.2 item errors use the same fields):
 * {"status":"error","error_code":"...","message":"...","details":[...]}
 * The root handler maps CdpErrors by code, Fastify's own errors by status, and hides the text of
 * anything unexpected.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify'
import { CdpError, type ErrorCode } from '../errors.js'

export interface ErrorBody {
  status: 'error'
  error_code: ErrorCode
  message: string
  details?: { pointer: string; code: string; message: string }[]
}

export function sendError(reply: FastifyReply, err: CdpError): FastifyReply {
  const body: ErrorBody = { status: 'error', error_code: err.code, message: err.message }
  if (err.details !== undefined) body.details = err.details
  if (err.retryAfter !== undefined) void reply.header('retry-after', String(err.retryAfter))
  if (err.code === 'unauthorized') void reply.header('www-authenticate', 'Bearer')
  return reply.code(err.status).send(body)
}

const FASTIFY_STATUS_TO_CODE: Record<number, ErrorCode> = {
  400: 'bad_request',
  404: 'not_found',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof CdpError) {
      if (error.status >= 500) request.log.warn({ code: error.code, err: error.cause instanceof Error ? error.cause.message : undefined }, error.message)
      return sendError(reply, error)
    }
    const status = error.statusCode ?? 500
    const code = FASTIFY_STATUS_TO_CODE[status]
    if (code !== undefined && status < 500) {
      // Fastify's own messages for these (body too large, bad JSON, prototype poisoning) are safe to show
      return sendError(reply, new CdpError(code, error.message))
    }
    request.log.error({ err: error }, 'unexpected error')
    return sendError(reply, new CdpError('internal_error', 'internal error; retry with the same externalEventId', { retryAfter: 1 }))
  })
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new CdpError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)))
}
