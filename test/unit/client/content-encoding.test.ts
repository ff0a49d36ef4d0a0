/**
 * The inflater behind Content-Encoding: gzip stops at the limit without reading the rest of a
 * decompression bomb, and reports corrupt input as bad_request. The HTTP answers (413, 400, 415)
 * are checked against the real API in test/integration/content-encoding.test.ts.
 */
import t from 'tap'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { inflateLimited } from '../../../src/http/content-encoding.js'
import { CdpError } from '../../../src/errors.js'

function chunked(buf: Buffer, size: number): { stream: Readable; read: () => number } {
  let at = 0
  const stream = new Readable({
    read() {
      if (at >= buf.length) { this.push(null); return }
      this.push(buf.subarray(at, at + size))
      at += size
    },
  })
  return { stream, read: () => Math.min(at, buf.length) }
}

async function drain(s: Readable): Promise<{ bytes: Buffer; err: unknown }> {
  const parts: Buffer[] = []
  try {
    for await (const c of s) parts.push(c as Buffer)
    return { bytes: Buffer.concat(parts), err: undefined }
  } catch (err) {
    return { bytes: Buffer.concat(parts), err }
  }
}

void t.test('inflates within the limit and counts the compressed bytes', async (tt) => {
  const json = Buffer.from(JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ i })) }))
  const gz = gzipSync(json)
  const out = inflateLimited(Readable.from([gz]), 64 * 1024)
  const { bytes, err } = await drain(out)
  tt.equal(err, undefined)
  tt.same(bytes, json)
  tt.equal(out.receivedEncodedLength, gz.length)
})

void t.test('a bomb fails with payload_too_large and is not read to the end', async (tt) => {
  // 100 gzip members of 10 MiB of zeros each (~1 MiB inflating to 1 GiB; gunzip reads concatenated
  // members as one stream): far more than the stream buffers hold, so stopping early shows in how
  // much of the input was read
  const member = gzipSync(Buffer.alloc(10 * 1024 * 1024))
  const bomb = Buffer.concat(Array.from({ length: 100 }, () => member))
  const src = chunked(bomb, 256)
  const { bytes, err } = await drain(inflateLimited(src.stream, 64 * 1024))
  tt.ok(err instanceof CdpError && err.code === 'payload_too_large', String(err))
  tt.ok(bytes.length <= 64 * 1024, `passed on ${bytes.length} bytes at most the limit`)
  tt.ok(src.read() < bomb.length / 10, `read ${src.read()} of ${bomb.length} compressed bytes`)
})

void t.test('corrupt gzip fails with bad_request', async (tt) => {
  const gz = gzipSync(Buffer.from('{"items":[]}'))
  gz[12] = gz[12]! ^ 0xff
  gz[gz.length - 6] = gz[gz.length - 6]! ^ 0xff
  const { err } = await drain(inflateLimited(Readable.from([gz]), 1024))
  tt.ok(err instanceof CdpError && err.code === 'bad_request', String(err))
  const { err: notGzip } = await drain(inflateLimited(Readable.from([Buffer.from('{"plain":"json"}')]), 1024))
  tt.ok(notGzip instanceof CdpError && notGzip.code === 'bad_request', String(notGzip))
})
