/**
 * The compact on-disk / in-memory form of claims and dedup records (issue 10 item 5), shared by
 * the Redis stores (LMDB keeps tuple keys and msgpack: docs/BENCHMARKS.md). Dedup is permanent, so every byte per fact is paid forever.
 *
 * Key: the first 16 bytes (128 bits) of sha256 over the canonical FactKey text (src/avro/key.ts),
 * instead of the ~47-byte JSON tuple stored in full (twice: once per store).
 *   Collision odds: with n facts and a b-bit digest, P(any two collide) ~ n^2 / 2^(b+1). At
 *   n = 10^12 facts and b = 128 that is 10^24 / 6.8 * 10^38 ~ 1.5 * 10^-15 for the store's whole
 *   life; a collision would answer one fact as a duplicate of (or conflict with) another. Finding
 *   one on purpose takes ~2^64 sha256 evaluations (a birthday search), far beyond a tenant's
 *   reach, and would only let a tenant confuse its own facts with some other key's: cross-tenant
 *   it needs a collision with a tuple it does not choose, a second-preimage search (~2^128).
 *   The tenant is not visible in the key: nothing lists or scans claims or dedup records (erasure
 *   computes the keys of the tuples it erases, `cdp state rebuild` replays the topic).
 *
 * Values, byte strings (layout chosen so the Redis Lua scripts can compare fields as substrings):
 *   claim  [state 'p'|'c'][claimedAt, 6 bytes big-endian ms][fingerprint field][event id field]
 *   dedup  [flag 'f'|'x' (erased)][fingerprint field][event id field][position field]
 * A string field is self-delimiting and canonical (one string, one encoding; equal encodings iff
 * equal strings), so scripts compare encodings and every value round-trips exactly:
 *   0x01 + 17 bytes   an event id as the API makes it: `evt_` + 26 Crockford base32 chars (130 bits)
 *   0x02 + 24 bytes   a fingerprint as src/avro/event.ts makes it: 32 base64url chars (192 bits)
 *   0x03 + u16 length + UTF-8   anything else (ids from other producers, test values)
 * The position field: 0x05 + length byte + LEB128(partition) + LEB128(offset) for a canonical
 * decimal offset, else 0x06 + length byte + UTF-8 of `partition/offset`.
 */
import * as crypto from 'node:crypto'
import { CdpError } from '../errors.js'
import type { ClaimRecord } from './rules.js'
import type { FactRef } from './types.js'

export const DIGEST_BYTES = 16

// one-shot crypto.hash (Node 20.12+) costs about half of a Hash object; not in @types/node 20
const oneShot = (crypto as unknown as { hash?: (alg: string, data: string, enc: 'buffer') => Buffer }).hash

/** the store key of a fact: 128 bits of sha256 over the canonical key text */
export function factDigest(key: string): Buffer {
  const d = oneShot !== undefined ? oneShot('sha256', key, 'buffer') : crypto.createHash('sha256').update(key, 'utf8').digest()
  return d.subarray(0, DIGEST_BYTES)
}

const B32 = '0123456789abcdefghjkmnpqrstvwxyz'
const B32_INDEX: number[] = []
for (let i = 0; i < B32.length; i++) B32_INDEX[B32.charCodeAt(i)] = i
const EVENT_ID = /^evt_[0-9a-hjkmnp-tv-z]{26}$/
const FINGERPRINT = /^[A-Za-z0-9_-]{32}$/

const TAG_EVENT_ID = 0x01
const TAG_FINGERPRINT = 0x02
const TAG_RAW = 0x03
const TAG_POS = 0x05
const TAG_POS_RAW = 0x06

/** bytes the encoding of `s` takes */
function fieldSize(s: string): number {
  if (EVENT_ID.test(s)) return 18
  if (FINGERPRINT.test(s)) return 25
  const n = Buffer.byteLength(s)
  if (n > 0xffff) throw new CdpError('internal_error', `state: a ${n}-byte id is too long to store`)
  return 3 + n
}

/** write the encoding of `s` (of `size` bytes, from fieldSize) at `at`; returns the end */
function writeField(out: Buffer, at: number, s: string, size: number): number {
  if (size === 18 && EVENT_ID.test(s)) {
    out[at] = TAG_EVENT_ID
    // 26 chars x 5 bits, most significant first, into 17 bytes (the last 6 bits stay zero)
    let acc = 0
    let bits = 0
    let o = at + 1
    for (let i = 4; i < 30; i++) {
      acc = (acc << 5) | B32_INDEX[s.charCodeAt(i)]!
      bits += 5
      if (bits >= 8) { bits -= 8; out[o++] = (acc >> bits) & 0xff; acc &= (1 << bits) - 1 }
    }
    out[o] = (acc << (8 - bits)) & 0xff
    return at + 18
  }
  if (size === 25 && FINGERPRINT.test(s)) {
    out[at] = TAG_FINGERPRINT
    out.write(s, at + 1, 24, 'base64url')
    return at + 25
  }
  out[at] = TAG_RAW
  out.writeUInt16BE(size - 3, at + 1)
  out.write(s, at + 3, size - 3, 'utf8')
  return at + size
}

/** encode one string field (see the module comment) */
export function encodeField(s: string): Buffer {
  const size = fieldSize(s)
  const out = Buffer.allocUnsafe(size)
  writeField(out, 0, s, size)
  return out
}

/** bytes the field starting at `at` takes */
function fieldLength(buf: Buffer, at: number): number {
  switch (buf[at]) {
    case TAG_EVENT_ID: return 18
    case TAG_FINGERPRINT: return 25
    case TAG_RAW: return 3 + buf.readUInt16BE(at + 1)
    default: throw new CdpError('internal_error', `state: unknown field tag ${String(buf[at])} in a stored record`)
  }
}

function decodeField(buf: Buffer, at: number): { value: string; end: number } {
  const end = at + fieldLength(buf, at)
  switch (buf[at]) {
    case TAG_EVENT_ID: {
      let s = 'evt_'
      let acc = 0
      let bits = 0
      for (let i = at + 1; i < end; i++) {
        acc = (acc << 8) | buf[i]!
        bits += 8
        while (bits >= 5 && s.length < 30) { bits -= 5; s += B32[(acc >> bits) & 31]; acc &= (1 << bits) - 1 }
      }
      return { value: s, end }
    }
    case TAG_FINGERPRINT: return { value: buf.subarray(at + 1, end).toString('base64url'), end }
    default: return { value: buf.subarray(at + 3, end).toString('utf8'), end }
  }
}

function leb128(n: bigint, out: number[]): void {
  do {
    let b = Number(n & 0x7fn)
    n >>= 7n
    if (n > 0n) b |= 0x80
    out.push(b)
  } while (n > 0n)
}

/** LEB128 of a safe integer, without BigInt (the usual offsets) */
function leb128Small(n: number, out: number[]): void {
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
}

const CANONICAL_OFFSET = /^(0|[1-9][0-9]{0,19})$/

/** partition and offset, canonical: equal encodings iff equal positions */
export function encodePosition(partition: number, offset: string): Buffer {
  if (Number.isSafeInteger(partition) && partition >= 0 && CANONICAL_OFFSET.test(offset)) {
    const body: number[] = [TAG_POS, 0]
    leb128Small(partition, body)
    if (offset.length <= 15) leb128Small(Number(offset), body)
    else leb128(BigInt(offset), body)
    body[1] = body.length - 2
    return Buffer.from(body)
  }
  const raw = Buffer.from(`${partition}/${offset}`, 'utf8')
  if (raw.length > 0xff) throw new CdpError('internal_error', 'state: a record position is too long to store')
  return Buffer.concat([Buffer.of(TAG_POS_RAW, raw.length), raw])
}

function decodePosition(buf: Buffer, at: number): { partition: number; offset: string } {
  const len = buf[at + 1]!
  const body = buf.subarray(at + 2, at + 2 + len)
  if (buf[at] === TAG_POS_RAW) {
    const s = body.toString('utf8')
    const slash = s.indexOf('/')
    return { partition: Number(s.slice(0, slash)), offset: s.slice(slash + 1) }
  }
  // numbers while they stay exact (below 2^53), BigInt beyond
  const nums: (number | bigint)[] = []
  let n = 0
  let mul = 1
  let big: bigint | undefined
  let shift = 0n
  for (const b of body) {
    if (big === undefined && mul < 2 ** 45) n += (b & 0x7f) * mul
    else {
      big ??= BigInt(n)
      big |= BigInt(b & 0x7f) << shift
    }
    mul *= 128
    shift += 7n
    if ((b & 0x80) === 0) { nums.push(big ?? n); n = 0; mul = 1; big = undefined; shift = 0n }
  }
  return { partition: Number(nums[0]), offset: String(nums[1]) }
}

export function encodeClaim(r: ClaimRecord): Buffer {
  const fs = fieldSize(r.fingerprint)
  const es = fieldSize(r.eventId)
  const out = Buffer.allocUnsafe(7 + fs + es)
  out[0] = r.state === 'committed' ? 0x63 : 0x70
  out.writeUIntBE(Math.max(0, Math.min(r.claimedAt, 2 ** 48 - 1)), 1, 6)
  writeField(out, writeField(out, 7, r.fingerprint, fs), r.eventId, es)
  return out
}

/**
 * One script argument per item for the Redis scripts: the bucket field, then the fingerprint,
 * the event id and (dedup) the position, each self-delimiting. One Buffer instead of three or
 * four: fewer allocations and arguments on the hot path.
 */
export function scriptItem(field: Buffer, fingerprint: string, eventId: string, position?: Buffer): Buffer {
  const fs = fieldSize(fingerprint)
  const es = fieldSize(eventId)
  const out = Buffer.allocUnsafe(field.length + fs + es + (position?.length ?? 0))
  field.copy(out, 0)
  const end = writeField(out, writeField(out, field.length, fingerprint, fs), eventId, es)
  position?.copy(out, end)
  return out
}

/** the bucket field and the event id, for commit, release and abandon */
export function scriptEventItem(field: Buffer, eventId: string): Buffer {
  const es = fieldSize(eventId)
  const out = Buffer.allocUnsafe(field.length + es)
  field.copy(out, 0)
  writeField(out, field.length, eventId, es)
  return out
}

export function decodeClaim(buf: Buffer): ClaimRecord {
  const fp = decodeField(buf, 7)
  const eid = decodeField(buf, fp.end)
  return { state: buf[0] === 0x63 ? 'committed' : 'pending', claimedAt: buf.readUIntBE(1, 6), fingerprint: fp.value, eventId: eid.value }
}

/** the event id field of an encoded claim (scripts compare it with the caller's) */
export function claimEventIdOf(buf: Buffer): string {
  return decodeField(buf, 7 + fieldLength(buf, 7)).value
}

export function encodeFact(r: FactRef): Buffer {
  const fs = fieldSize(r.fingerprint)
  const es = fieldSize(r.eventId)
  const pos = encodePosition(r.partition, r.offset)
  const out = Buffer.allocUnsafe(1 + fs + es + pos.length)
  out[0] = r.erased === true ? 0x78 : 0x66
  pos.copy(out, writeField(out, writeField(out, 1, r.fingerprint, fs), r.eventId, es))
  return out
}

export function decodeFact(buf: Buffer): FactRef {
  const fp = decodeField(buf, 1)
  const eid = decodeField(buf, fp.end)
  const pos = decodePosition(buf, eid.end)
  return { eventId: eid.value, fingerprint: fp.value, partition: pos.partition, offset: pos.offset, ...(buf[0] === 0x78 ? { erased: true } : {}) }
}
