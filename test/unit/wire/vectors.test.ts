/**
 * docs/wire/test-vectors.json is the wire contract as data: producers in other languages check
 * themselves against it. Every expected value in it is recomputed here from the project's own
 * code, so the file cannot drift from what the consumer actually accepts; the partitions are also
 * computed with kafkajs's own DefaultPartitioner, so partitionFor is the partitioner the project's
 * producers really use.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import avro from 'avsc'
import { Partitioners, type PartitionMetadata } from 'kafkajs'
import { decodeKey, encodeKey, type DedupTuple } from '../../../src/avro/key.js'
import { partitionFor } from '../../../src/avro/partition.js'
import { fingerprintOf, newEventId, type CdpEvent } from '../../../src/avro/event.js'
import { valueSchemaText } from '../../../src/avro/codec.js'
import { VECTORS_PATH, vectorsText } from '../../../scripts/wire-vectors.js'

interface KeyVector { name: string; tuple: DedupTuple; keyHex: string; partitions: Record<string, number>; sendable?: false }
interface FingerprintVector { name: string; sameFactGroup: string; event: CdpEvent; fingerprint: string }
interface Vectors { partitionCounts: number[]; keys: KeyVector[]; fingerprints: FingerprintVector[] }

const text = readFileSync(VECTORS_PATH, 'utf8')
const vectors = JSON.parse(text) as Vectors

void t.test('the file is what scripts/wire-vectors.ts writes (regenerate it after changing a case)', async (t) => {
  t.equal(text, vectorsText())
})

void t.test('every key vector: the bytes are encodeKey of the tuple, and decode back to it', async (t) => {
  t.ok(vectors.keys.length >= 50)
  for (const v of vectors.keys) {
    const bytes = encodeKey(v.tuple)
    t.equal(bytes.toString('hex'), v.keyHex, v.name)
    t.same(decodeKey(Buffer.from(v.keyHex, 'hex')), v.tuple, `${v.name}: decodes to the tuple`)
  }
})

void t.test('every key vector: the partition is partitionFor for each partition count', async (t) => {
  t.same(vectors.partitionCounts, [1, 3, 6, 12, 64])
  for (const v of vectors.keys) {
    const bytes = Buffer.from(v.keyHex, 'hex')
    const expected = Object.fromEntries(vectors.partitionCounts.map((n) => [String(n), partitionFor(bytes, n)]))
    t.same(v.partitions, expected, v.name)
  }
})

void t.test("partitionFor agrees with kafkajs's DefaultPartitioner", async (t) => {
  const partitioner = Partitioners.DefaultPartitioner()
  const metadata = (n: number): PartitionMetadata[] =>
    Array.from({ length: n }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 1, replicas: [1], isr: [1] }))
  const kafkajs = (key: Buffer, n: number) => partitioner({ topic: 'cdp.events.v1', partitionMetadata: metadata(n), message: { key, value: null } })
  for (const v of vectors.keys) {
    const key = Buffer.from(v.keyHex, 'hex')
    for (const n of vectors.partitionCounts) t.equal(kafkajs(key, n), v.partitions[String(n)], `${v.name}, ${n} partitions`)
  }
  // and beyond the file: many keys, odd partition counts, every tail length (bytes % 4)
  let differ = 0
  for (let i = 0; i < 5000; i++) {
    const key = encodeKey({ tenant: 'acme', source: 'svc.orders', externalEventId: `o-${i}-${'é'.repeat(i % 5)}` })
    for (const n of [2, 5, 7, 100, 1000]) if (kafkajs(key, n) !== partitionFor(key, n)) differ++
  }
  t.equal(differ, 0, '25,000 more keys and partition counts')
})

void t.test('the key vectors cover every character class the docs name', async (t) => {
  const ids = vectors.keys.map((v) => `${v.tuple.tenant}${v.tuple.source}${v.tuple.externalEventId}`).join('')
  const hex = vectors.keys.map((v) => v.keyHex).join(' ')
  const has = (c: string) => ids.includes(c)
  for (const c of ['"', '\\', '\b', '\f', '\n', '\r', '\t', '\u0000', '\u000b', '\u001f', '\u007f', '\u2028', '\u2029', '/', '<', 'é', '😀', '\ud800', '\udfff']) {
    t.ok(has(c), `a tuple with U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  }
  // the escapes as bytes: \t is 5c 74, never 5c 75 30 30 30 39 (\u0009); U+007F is the raw byte
  t.ok(hex.includes('5c74') && !hex.includes('5c7530303039'), 'tab as \\t')
  t.ok(hex.includes('5c7530303062'), 'vertical tab as \\u000b (lowercase)')
  t.ok(hex.includes('617f62'), 'DEL raw')
  t.ok(hex.includes('e280a8'), 'U+2028 raw')
  t.ok(hex.includes('5c7564383030'), 'lone surrogate as \\ud800')
})

void t.test('tuples marked not sendable really cannot travel in the Avro value', async (t) => {
  const type = avro.Type.forSchema(JSON.parse(valueSchemaText()) as avro.Schema)
  const event = vectors.fingerprints[0]!.event
  for (const v of vectors.keys) {
    const back = type.fromBuffer(type.toBuffer({ ...event, ...v.tuple })) as CdpEvent
    const same = back.tenant === v.tuple.tenant && back.source === v.tuple.source && back.externalEventId === v.tuple.externalEventId
    t.equal(same, v.sendable !== false, `${v.name}: ${same ? 'survives' : 'does not survive'} the Avro round trip`)
  }
})

void t.test('every fingerprint vector is fingerprintOf its event; groups are exactly the same facts', async (t) => {
  for (const v of vectors.fingerprints) t.equal(fingerprintOf(v.event), v.fingerprint, v.name)
  const byGroup = new Map<string, Set<string>>()
  for (const v of vectors.fingerprints) byGroup.set(v.sameFactGroup, (byGroup.get(v.sameFactGroup) ?? new Set()).add(v.fingerprint))
  for (const [g, fps] of byGroup) t.equal(fps.size, 1, `group ${g}: one fingerprint`)
  const all = [...byGroup.values()].map((s) => [...s][0])
  t.equal(new Set(all).size, all.length, 'different groups, different fingerprints')
})

void t.test('event ids: evt_ + 26 characters of the lowercase Crockford alphabet', async (t) => {
  const format = /^evt_[0-9a-hjkmnp-tv-z]{26}$/
  const bad = Array.from({ length: 1000 }, () => newEventId()).filter((id) => !format.test(id))
  t.same(bad, [], '1,000 new ids match')
  for (const v of vectors.fingerprints) t.match(v.event.eventId, format, v.name)
  // the first 10 characters are the time: ids sort by creation time
  t.ok(newEventId(Date.UTC(2026, 0, 1)) < newEventId(Date.UTC(2026, 0, 2)))
})
