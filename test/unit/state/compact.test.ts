import t from 'tap'
import { fingerprint, newEventId } from '../../../src/avro/event.js'
import { keyString } from '../../../src/avro/key.js'
import { decodeClaim, decodeFact, encodeClaim, encodeFact, encodeField, encodePosition, factDigest } from '../../../src/state/compact.js'
import { factSlot } from '../../../src/state/redis.js'
import type { ClaimRecord } from '../../../src/state/rules.js'
import type { FactRef } from '../../../src/state/types.js'

const fp = (i: number) => fingerprint({ eventType: 'purchase_completed', occurredAt: i, identity: { email: `u${i}@example.com` }, properties: { i } })

void t.test('claims and facts round-trip exactly, whatever the ids look like', async (t) => {
  const ids = [newEventId(), newEventId(0), newEventId(2 ** 48 - 1), 'evt_zzzzzzzzzzzzzzzzzzzzzzzzzz', 'evt_00000000000000000000000000',
    'evt_1', 'EVT_01K9ZX3Q4M8R2T6V0W5Y7Z9A1B', 'evt_01k9zx3q4m8r2t6v0w5y7z9a1bc', 'évènement-é', '', 'x'.repeat(60_000)]
  const fps = [fp(1), fp(2), 'f', 'fNHvzbeuFpeDUyFm3GcVwGCvkYLkBq4', 'fNHvzbeuFpeDUyFm3GcVwGCvkYLkBq4N=', 'a+b/cdefghijklmnopqrstuvwxyz01234', '']
  let n = 0
  for (const eventId of ids) {
    for (const fingerprint of fps) {
      for (const claim of [
        { state: 'pending', eventId, fingerprint, claimedAt: 1_796_000_000_123 },
        { state: 'committed', eventId, fingerprint, claimedAt: 0 },
      ] satisfies ClaimRecord[]) {
        t.same(decodeClaim(encodeClaim(claim)), claim)
        n++
      }
      for (const fact of [
        { eventId, fingerprint, partition: 0, offset: '0' },
        { eventId, fingerprint, partition: 11, offset: '9223372036854775807' },
        { eventId, fingerprint, partition: 3, offset: '1234567', erased: true },
        { eventId, fingerprint, partition: 2, offset: 'not-a-number' },
        { eventId, fingerprint, partition: 2, offset: '007' },
      ] satisfies FactRef[]) {
        t.same(decodeFact(encodeFact(fact)), fact)
        n++
      }
    }
  }
  t.equal(n, ids.length * fps.length * 7)
})

void t.test('ids as the API makes them take their compact forms', async (t) => {
  const eventId = newEventId()
  t.equal(encodeField(eventId).length, 18, 'event id: tag + 17 bytes (130 bits)')
  t.equal(encodeField(fp(1)).length, 25, 'fingerprint: tag + 24 bytes (192 bits)')
  t.equal(encodeClaim({ state: 'committed', eventId, fingerprint: fp(1), claimedAt: Date.now() }).length, 50)
  t.equal(encodeFact({ eventId, fingerprint: fp(1), partition: 7, offset: '1000000' }).length, 50)
})

void t.test('encodings are canonical: equal bytes exactly when the values are equal', async (t) => {
  // the Redis scripts compare encodings instead of strings
  const values = [newEventId(1), newEventId(2), 'evt_1', fp(1), fp(2), 'f', 'F', 'évènement', '']
  const seen = new Map<string, string>()
  for (const v of values) {
    const hex = encodeField(v).toString('hex')
    t.equal(seen.get(hex), undefined, `${v} has its own encoding`)
    seen.set(hex, v)
    t.equal(encodeField(v).toString('hex'), hex, 'and always the same one')
  }
  t.not(encodePosition(1, '23').toString('hex'), encodePosition(12, '3').toString('hex'))
  t.not(encodePosition(1, '23').toString('hex'), encodePosition(1, '023').toString('hex'))
  t.equal(encodePosition(1, '23').toString('hex'), encodePosition(1, '23').toString('hex'))
})

void t.test('the key digest: 16 bytes, the same for the same tuple only', async (t) => {
  const a = keyString({ tenant: 'acme', source: 'pos', externalEventId: '1' })
  const b = keyString({ tenant: 'acme', source: 'pos', externalEventId: '2' })
  t.equal(factDigest(a).length, 16)
  t.same(factDigest(a), factDigest(a))
  t.not(factDigest(a).toString('hex'), factDigest(b).toString('hex'))
})

/** Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, mod 16384 */
function keySlot(key: string): number {
  const open = key.indexOf('{')
  const close = open < 0 ? -1 : key.indexOf('}', open + 1)
  const tagged = open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key
  let crc = 0
  for (const byte of Buffer.from(tagged)) {
    crc ^= byte << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}

void t.test('redis buckets: a fact\'s claim and dedup keys share one slot, buckets respect the bits', async (t) => {
  t.equal(keySlot('123456789'), 12739, 'the CRC16 of the Redis Cluster spec')
  const slots = new Set<number>()
  for (let i = 0; i < 2000; i++) {
    const key = keyString({ tenant: 'acme', source: 'pos', externalEventId: `o-${i}` })
    const s = factSlot(key)
    const [c, d] = [keySlot(`cdp:c${s.suffix}`), keySlot(`cdp:d${s.suffix}`)]
    if (c !== d) t.fail(`${key}: claim slot ${c}, dedup slot ${d}`)
    slots.add(c)
    t.equal(s.tag, `{${factDigest(key).subarray(0, 1).toString('hex')}}`)
  }
  t.equal(slots.size, 256, 'the 256 tags of the first digest byte')
  // the bucket is the digest's first bits; the field keeps the rest
  const key = keyString({ tenant: 'acme', source: 'pos', externalEventId: 'x' })
  const d = factDigest(key)
  t.equal(factSlot(key, 24).suffix.replace(/^\{..\}/, ''), (d.readUInt32BE(0) >>> 8).toString(36))
  t.same(factSlot(key, 24).field, d.subarray(3))
  t.equal(factSlot(key, 10).suffix.replace(/^\{..\}/, ''), (d.readUInt32BE(0) >>> 22).toString(36))
  t.same(factSlot(key, 10).field, d.subarray(1))
})
