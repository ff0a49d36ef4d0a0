/**
 * Request bodies may arrive gzip-compressed (`Content-Encoding: gzip`, the client in clients/node
 * does this for large batches) or plain (`identity` or no header). Any other coding is 415.
 *
 * The route's body limit applies to the DECOMPRESSED size: a few KiB of gzip can inflate to
 * gigabytes, so the inflater stops, and the request answers 413, as soon as its output passes the
 * limit, without inflating the rest. Corrupt gzip is 400. Fastify counts the decompressed bytes
 * against the same limit too; `receivedEncodedLength` tells it how many compressed bytes came in,
 * which is what it compares with Content-Length.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { createGunzip, type Gunzip } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import { CdpError } from '../errors.js'

/** A readable of the inflated body that fails with payload_too_large past `limit` bytes. */
export function inflateLimited(source: Readable, limit: number): Readable & { receivedEncodedLength: number } {
  let received = 0
  let inflated = 0
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) { received += chunk.length; cb(null, chunk) },
  })
  const gunzip: Gunzip = createGunzip()
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      inflated += chunk.length
      if (inflated > limit) {
        cb(new CdpError('payload_too_large', `decompressed body is larger than the route limit of ${limit} bytes`))
        return
      }
      cb(null, chunk)
    },
  }) as Transform & { receivedEncodedLength: number }
  Object.defineProperty(out, 'receivedEncodedLength', { get: () => received, enumerable: true })

  const stop = (err: Error) => {
    // stop reading the socket and inflating at once; nothing of this body is used any more
    source.unpipe(counter)
    counter.unpipe(gunzip)
    gunzip.unpipe(out)
    gunzip.destroy()
    if (!out.destroyed) out.destroy(err)
  }
  gunzip.on('error', (err) => stop(new CdpError('bad_request', `body is not valid gzip: ${err.message}`)))
  out.on('error', (err) => stop(err))
  source.on('error', (err) => stop(err))
  source.pipe(counter).pipe(gunzip).pipe(out)
  return out
}

/**
 * Adds the preParsing hook to the root instance, so it runs for every route. `defaultBodyLimitBytes`
 * (config.http.singleBodyLimitBytes) only applies if a route reports no limit; Fastify gives each
 * route its own (the batch route's is config.http.batchBodyLimitBytes).
 */
export function installContentEncoding(app: FastifyInstance, defaultBodyLimitBytes: number): void {
  app.addHook('preParsing', async (request, _reply, payload) => {
    const header = request.headers['content-encoding']
    if (header === undefined) return payload
    const coding = header.trim().toLowerCase()
    if (coding === '' || coding === 'identity') return payload
    if (coding !== 'gzip' && coding !== 'x-gzip') {
      throw new CdpError('unsupported_media_type', `Content-Encoding ${JSON.stringify(header)} is not supported; send gzip or identity`)
    }
    const limit = request.routeOptions.bodyLimit ?? defaultBodyLimitBytes
    return inflateLimited(payload as Readable, limit)
  })
}
