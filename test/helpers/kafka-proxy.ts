/**
 * A TCP proxy in front of the shared Kafka broker, to simulate an outage for one test's service
 * without touching the broker other tests use.
 *
 * Kafka clients connect to the bootstrap address, then to the addresses the broker advertises in
 * Metadata responses (here the real broker's), which would bypass a plain proxy. So the proxy
 * rewrites the broker list of every Metadata response (API key 3: versions 0-6, the ones kafkajs
 * speaks, and the "flexible" versions 9+ with compact strings and tagged fields, which
 * @platformatic/kafka speaks) to point at itself; everything else passes through unchanged.
 * It assumes one broker, as in the development stack.
 *
 * `cut()` closes every connection and refuses new ones (accepted, then closed at once, as a host
 * that went away would); `restore()` lets connections through again.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

const METADATA = 3

export interface KafkaProxy {
  /** host:port for the service's kafka.brokers */
  address: string
  cut(): void
  restore(): void
  /** Metadata responses rewritten so far (shows the proxy is in the path) */
  rewrites(): number
  close(): Promise<void>
}

/** Splits a byte stream into Kafka frames (int32 size + payload), calling back with whole frames. */
function framer(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0)
  return (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    while (buf.length >= 4) {
      const size = buf.readInt32BE(0)
      if (buf.length < 4 + size) break
      onFrame(buf.subarray(0, 4 + size))
      buf = buf.subarray(4 + size)
    }
  }
}

/** unsigned varint (flexible versions' lengths and counts): value and bytes used */
function readUVarInt(buf: Buffer, at: number): [number, number] {
  let value = 0
  let shift = 0
  let used = 0
  for (;;) {
    const b = buf[at + used]!
    used++
    value += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return [value, used]
    shift += 7
  }
}

function uvarint(n: number): Buffer {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}

/** the end of a tagged-fields section starting at `at` */
function skipTaggedFields(buf: Buffer, at: number): number {
  const [count, used] = readUVarInt(buf, at)
  at += used
  for (let i = 0; i < count; i++) {
    const [, tagUsed] = readUVarInt(buf, at)
    at += tagUsed
    const [size, sizeUsed] = readUVarInt(buf, at)
    at += sizeUsed + size
  }
  return at
}

/** Metadata v9+ (flexible): compact arrays and strings, tagged fields in the header and per broker */
function rewriteFlexibleMetadata(frame: Buffer, host: string, port: number): Buffer {
  let at = skipTaggedFields(frame, 4 + 4) // size, correlation id, header tagged fields
  at += 4 // throttle_time_ms
  const head = frame.subarray(4, at)
  const [countPlusOne, countUsed] = readUVarInt(frame, at)
  const countBuf = frame.subarray(at, at + countUsed)
  at += countUsed
  const hostBytes = Buffer.from(host)
  const brokers: Buffer[] = []
  for (let i = 0; i < countPlusOne - 1; i++) {
    const nodeId = frame.subarray(at, at + 4)
    at += 4
    const [hostLenPlusOne, hostUsed] = readUVarInt(frame, at)
    at += hostUsed + (hostLenPlusOne - 1) + 4 // host, port
    const restStart = at
    const [rackLenPlusOne, rackUsed] = readUVarInt(frame, at) // 0: null rack
    at += rackUsed + Math.max(0, rackLenPlusOne - 1)
    at = skipTaggedFields(frame, at)
    const portBuf = Buffer.alloc(4)
    portBuf.writeInt32BE(port, 0)
    brokers.push(nodeId, uvarint(hostBytes.length + 1), hostBytes, portBuf, frame.subarray(restStart, at))
  }
  const body = Buffer.concat([head, countBuf, ...brokers, frame.subarray(at)])
  const size = Buffer.alloc(4)
  size.writeInt32BE(body.length, 0)
  return Buffer.concat([size, body])
}

/** the Metadata response with every broker's host and port replaced */
export function rewriteMetadata(frame: Buffer, version: number, host: string, port: number): Buffer {
  if (version >= 9) return rewriteFlexibleMetadata(frame, host, port)
  let at = 4 + 4 // size, correlation id
  if (version >= 3) at += 4 // throttle_time_ms
  const head = frame.subarray(4, at)
  const count = frame.readInt32BE(at)
  at += 4
  const brokers: Buffer[] = []
  const hostBytes = Buffer.from(host)
  for (let i = 0; i < count; i++) {
    const nodeId = frame.readInt32BE(at)
    at += 4
    const hostLen = frame.readInt16BE(at)
    at += 2 + hostLen + 4 // host, port
    let rack: Buffer = Buffer.alloc(0)
    if (version >= 1) {
      const rackLen = frame.readInt16BE(at)
      const len = 2 + Math.max(0, rackLen)
      rack = frame.subarray(at, at + len)
      at += len
    }
    const b = Buffer.alloc(4 + 2 + hostBytes.length + 4)
    b.writeInt32BE(nodeId, 0)
    b.writeInt16BE(hostBytes.length, 4)
    hostBytes.copy(b, 6)
    b.writeInt32BE(port, 6 + hostBytes.length)
    brokers.push(b, rack)
  }
  const countBuf = Buffer.alloc(4)
  countBuf.writeInt32BE(count, 0)
  const body = Buffer.concat([head, countBuf, ...brokers, frame.subarray(at)])
  const size = Buffer.alloc(4)
  size.writeInt32BE(body.length, 0)
  return Buffer.concat([size, body])
}

export async function startKafkaProxy(upstream: string): Promise<KafkaProxy> {
  const [upHost, upPort] = upstream.split(':') as [string, string]
  const sockets = new Set<Socket>()
  let down = false
  let rewritten = 0
  let port = 0

  const server: Server = createServer((client) => {
    if (down) { client.destroy(); return }
    const broker = connect(Number(upPort), upHost)
    sockets.add(client)
    sockets.add(broker)
    const drop = () => { client.destroy(); broker.destroy(); sockets.delete(client); sockets.delete(broker) }
    client.on('error', drop).on('close', drop)
    broker.on('error', drop).on('close', drop)
    // correlation id -> Metadata version, for the requests whose answers need rewriting
    const metadata = new Map<number, number>()
    client.on('data', framer((frame) => {
      if (frame.length >= 12 && frame.readInt16BE(4) === METADATA) metadata.set(frame.readInt32BE(8), frame.readInt16BE(6))
      broker.write(frame)
    }))
    broker.on('data', framer((frame) => {
      const version = metadata.get(frame.readInt32BE(4))
      if (version === undefined) { client.write(frame); return }
      metadata.delete(frame.readInt32BE(4))
      rewritten++
      client.write(rewriteMetadata(frame, version, '127.0.0.1', port))
    }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  return {
    address: `127.0.0.1:${port}`,
    cut() { down = true; for (const s of sockets) s.destroy(); sockets.clear() },
    restore() { down = false },
    rewrites: () => rewritten,
    close: () => new Promise<void>((resolve) => {
      down = true
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}
