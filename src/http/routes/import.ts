/**
 * POST /v1/cdp/events/import: NDJSON (`application/x-ndjson`, one event per line, gzip allowed)
 * for historical backfills. Needs events:batch. The body is read as a stream and judged in chunks
 * (src/ingest/import.ts), and the answer streams back as NDJSON as lines are judged:
 *
 *   {"line":1,"status":"accepted","event_id":"..."}
 *   {"line":2,"status":"error","error_code":"validation_failed","message":"...","details":[...]}
 *   {"done":true,"lines":2,"accepted":1,"duplicate":0,"rejected":1,"last_line":2}
 *
 * The last line says how the import ended: `done: true`, or `done: false` with an error_code
 * (kafka_unavailable, rate_limited with retry_after, payload_too_large, ...) after which nothing
 * more was judged; a client re-sends from the first line without a result (dedup answers lines
 * stored before as `duplicate`). No last line at all means the connection broke: same remedy.
 *
 * Limits: config.http.importBodyLimitBytes (after decompression) and importMaxLines per request;
 * every line is charged against the key's and tenant's rate limits, chunk by chunk.
 */
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../../config/index.js'
import { CdpError, isCdpError } from '../../errors.js'
import type { IngestService } from '../../ingest/service.js'
import { importNdjson, type ImportSummary } from '../../ingest/import.js'
import type { KeyVerifier } from '../../auth/keys.js'
import { chargeKey, requireKey, tenantOf } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'
import { errorResponse, frontDoorResponses, keyResponses, requestTimeout, retryAfter, tooLarge } from '../openapi/responses.js'

export const NDJSON = 'application/x-ndjson'

export interface ImportRoutesOptions {
  config: Readonly<Config>
  ingest: IngestService
  keys: KeyVerifier
  limiter: RateLimiter
}

/** the plain body, failing with payload_too_large past `limit` bytes (gzip bodies are counted inflated, in content-encoding.ts) */
function limited(source: Readable, limit: number): Readable {
  let seen = 0
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      seen += chunk.length
      if (seen > limit) { cb(new CdpError('payload_too_large', `import body is larger than ${limit} bytes; send the rest in another request`)); return }
      cb(null, chunk)
    },
  })
  source.on('error', (err) => out.destroy(err))
  return source.pipe(out)
}

export const importRoutes: FastifyPluginAsync<ImportRoutesOptions> = async (app, opts) => {
  const { config, ingest } = opts
  const h = config.http
  // the body stays a stream; the handler reads it line by line
  app.addContentTypeParser(NDJSON, (_request, payload, done) => { done(null, payload) })

  app.post('/v1/cdp/events/import', {
    onRequest: requireKey(opts.keys, 'events:batch'),
    bodyLimit: h.importBodyLimitBytes,
    schema: {
      summary: 'Bulk import: NDJSON, one event per line, for historical backfills; results stream back per line',
      description: 'Each line is judged like a batch item (validation, dedup, per-item result). The answer is NDJSON: ' +
        '{"line":N,...result} per non-blank line, then {"done":true|false,...counts}; done:false carries the error_code ' +
        'that stopped the import (re-send from the first line without a result). Content-Encoding: gzip is accepted; ' +
        `at most importMaxLines (${h.importMaxLines}) lines and importBodyLimitBytes (${h.importBodyLimitBytes}) bytes after ` +
        'decompression per request. ?source=S sets the source of lines that have none.',
      querystring: { type: 'object', additionalProperties: false, properties: { source: { type: 'string', minLength: 1, maxLength: 256 } } },
      consumes: [NDJSON],
      response: {
        200: { description: 'NDJSON: one result per line, then the summary line', type: 'string' },
        ...frontDoorResponses,
        ...keyResponses,
        ...requestTimeout,
        ...tooLarge(h.importBodyLimitBytes),
        422: errorResponse('validation_failed: the query string (source) is invalid, or the import has more than importMaxLines lines'),
        429: errorResponse('rate_limited: events per key or per tenant (charged per line), or failing requests per client address; wait Retry-After seconds', retryAfter),
      },
    },
  }, async (request, reply) => {
    const key = request.apiKey!
    const ct = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    if (ct !== NDJSON) throw new CdpError('unsupported_media_type', `send the import as ${NDJSON}`)
    const declared = Number(request.headers['content-length'])
    const gzip = /gzip/i.test(request.headers['content-encoding'] ?? '')
    if (!gzip && Number.isFinite(declared) && declared > h.importBodyLimitBytes) {
      throw new CdpError('payload_too_large', `import body is larger than ${h.importBodyLimitBytes} bytes; send it in parts`)
    }
    const source = (request.query as { source?: string }).source
    const body = gzip ? request.body as Readable : limited(request.body as Readable, h.importBodyLimitBytes)

    const out = new PassThrough()
    const write = async (obj: object): Promise<void> => {
      if (!out.write(`${JSON.stringify(obj)}\n`)) await new Promise<void>((r) => { out.once('drain', r); out.once('close', r) })
    }
    const run = async (): Promise<void> => {
      const results = importNdjson(body, {
        ingest: (items) => ingest.ingest({ tenant: tenantOf(key), sources: key.sources }, items),
        charge: (n) => chargeKey(opts.limiter, request, n),
        chunkLines: h.maxBatchItems,
        maxLines: h.importMaxLines,
        maxLineBytes: h.maxEventBytes * 4,
        maxPropertiesDepth: config.validation.maxPropertiesDepth,
        ...(source === undefined ? {} : { defaultSource: source }),
      })
      const last: ImportSummary = { lines: 0, accepted: 0, duplicate: 0, rejected: 0, lastLine: 0 }
      try {
        for (let step = await results.next(); ; step = await results.next()) {
          if (step.done === true) {
            await write({ done: true, lines: last.lines, accepted: last.accepted, duplicate: last.duplicate, rejected: last.rejected, last_line: last.lastLine })
            return
          }
          const r = step.value
          last.lines++
          last.lastLine = r.line
          if (r.status === 'accepted') last.accepted++
          else if (r.status === 'duplicate') last.duplicate++
          else last.rejected++
          await write(r)
          // the client went away: stop judging (what was judged stands; dedup makes a re-send safe)
          if (out.destroyed) return
        }
      } catch (err) {
        const e = isCdpError(err) ? err : new CdpError('internal_error', 'import failed', { cause: err })
        if (!isCdpError(err)) request.log.error({ err }, 'import failed')
        await write({
          done: false, error_code: e.code, message: e.message, ...(e.retryAfter === undefined ? {} : { retry_after: e.retryAfter }),
          lines: last.lines, accepted: last.accepted, duplicate: last.duplicate, rejected: last.rejected, last_line: last.lastLine,
        })
      } finally {
        await results.return(last).catch(() => undefined)
        // stop reading what is left of the body
        body.destroy()
      }
    }
    void run().finally(() => out.end())
    return reply.code(200).type(`${NDJSON}; charset=utf-8`).send(out)
  })
}
