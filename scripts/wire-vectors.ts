/**
 * Writes docs/wire/test-vectors.json: the wire contract of docs/DIRECT-PRODUCERS.md as data, so a
 * producer in any language can check its key bytes, partitions and fingerprints against ours.
 *
 *   npx tsx scripts/wire-vectors.ts          (re)write the file
 *   npx tsx scripts/wire-vectors.ts --check  exit 1 when the file differs from what this writes
 *
 * Every expected value comes from the project's own code (encodeKey, partitionFor, fingerprintOf);
 * test/unit/wire/vectors.test.ts recomputes them from the file's inputs and compares.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { encodeKey, type DedupTuple } from '../src/avro/key.js'
import { partitionFor } from '../src/avro/partition.js'
import { fingerprintOf, type CdpEvent } from '../src/avro/event.js'

export const VECTORS_PATH = fileURLToPath(new URL('../docs/wire/test-vectors.json', import.meta.url))
export const PARTITION_COUNTS = [1, 3, 6, 12, 64] as const

interface KeyCase { name: string; tuple: DedupTuple; sendable?: false; why?: string }

const t = (externalEventId: string, tenant = 'acme', source = 'svc.orders'): DedupTuple => ({ tenant, source, externalEventId })
const LONE = 'not representable in the Avro value (Avro strings are UTF-8, which has no lone surrogates): '
  + 'the value would not match the key (key_mismatch) or the serializer fails; producers must refuse such ids'

const keyCases: KeyCase[] = [
  { name: 'plain ASCII (the example in the docs)', tuple: { tenant: 'acme', source: 'brand.pos', externalEventId: 'txn_987654321' } },
  { name: 'double quote: \\"', tuple: t('say "hi"') },
  { name: 'backslash: \\\\', tuple: t('C:\\orders\\42') },
  { name: 'backspace U+0008: \\b', tuple: t('a\bb') },
  { name: 'form feed U+000C: \\f', tuple: t('a\fb') },
  { name: 'line feed U+000A: \\n', tuple: t('line1\nline2') },
  { name: 'carriage return U+000D: \\r', tuple: t('a\rb') },
  { name: 'tab U+0009: \\t (never \\u0009)', tuple: t('col1\tcol2') },
  { name: 'NUL U+0000: \\u0000', tuple: t('a\u0000b') },
  { name: 'U+0001 and U+001F: lowercase \\u00xx', tuple: t('\u0001x\u001f') },
  { name: 'vertical tab U+000B: \\u000b (JSON has no \\v)', tuple: t('a\u000bb') },
  { name: 'escape U+001B: \\u001b, lowercase hex', tuple: t('\u001b[0m') },
  { name: 'every short escape and some controls in one id', tuple: t('"\\\b\f\n\r\t\u0000\u001e') },
  { name: 'DEL U+007F: raw byte 7f, not escaped', tuple: t('a\u007fb') },
  { name: 'U+0080 (C1 control): raw UTF-8 c2 80', tuple: t('a\u0080b') },
  { name: 'U+2028 and U+2029: raw UTF-8, not escaped', tuple: t('a\u2028b\u2029c') },
  { name: 'slash: raw, never \\/', tuple: t('orders/2026/05', 'acme', 'svc/orders:eu') },
  { name: 'HTML characters < > & \': raw, never \\u003c', tuple: t('<a href=\'x\'>&amp;</a>') },
  { name: 'Latin-1 letters: raw UTF-8 (2 bytes each)', tuple: t('café-Ünïcödé', 'bäckerei') },
  { name: 'CJK: raw UTF-8 (3 bytes each)', tuple: t('订单-42', '顧客') },
  { name: 'emoji outside the BMP: raw UTF-8 (4 bytes), never a \\ud83d\\ude00 pair', tuple: t('order-😀-🎉') },
  { name: 'NFC é (U+00E9)', tuple: t('caf\u00e9') },
  { name: 'NFD e + U+0301: other bytes, another key (no Unicode normalization)', tuple: t('cafe\u0301') },
  { name: 'BOM U+FEFF inside: raw ef bb bf', tuple: t('\ufeffid') },
  { name: 'U+FFFF noncharacter: raw ef bf bf', tuple: t('a\uffffb') },
  { name: 'spaces are data: kept as they are', tuple: t(' id with spaces ') },
  { name: 'commas and brackets inside values', tuple: t('["x","y"]', 'a,b', 'c],[d') },
  { name: 'long id: 256 characters', tuple: t('x'.repeat(250) + '-00001') },
  { name: 'lone high surrogate U+D800: \\ud800 in the key', tuple: t('a\ud800b'), sendable: false, why: LONE },
  { name: 'lone low surrogate U+DFFF: \\udfff in the key', tuple: t('\udfffz'), sendable: false, why: LONE },
  ...Array.from({ length: 24 }, (_, i) => ({ name: `ledger id ${i}`, tuple: t(`ledger-${String(i).padStart(6, '0')}`, 'acme', 'svc.loyalty') })),
]

interface EventCase { name: string; group: string; event: CdpEvent }

const base: CdpEvent = {
  eventId: 'evt_01hz3k5m7n9p0q2r4s6t8v0w2x',
  tenant: 'acme', source: 'svc.orders', externalEventId: 'order-1001',
  eventType: 'purchase_completed',
  occurredAt: Date.UTC(2026, 4, 20, 12, 45), occurredAtDefaulted: false, receivedAt: Date.UTC(2026, 4, 20, 12, 45, 3),
  identity: { externalUserId: 'L-123456789', email: 'Buyer@Example.com', phone: null, deviceKey: null },
  properties: '{"order_id":"o-1001","amount":42.5,"currency":"USD","store_id":"store_7"}',
  contractVersion: 1,
}
const ev = (over: Partial<CdpEvent>): CdpEvent => ({ ...base, ...over })

const eventCases: EventCase[] = [
  { name: 'a purchase', group: 'A', event: base },
  { name: 'A with other eventId, receivedAt and contractVersion: the same fact', group: 'A',
    event: ev({ eventId: 'evt_01hz3k5m7n9p0q2r4s6t8v0zzz', receivedAt: base.receivedAt + 60_000, contractVersion: null }) },
  { name: 'A with properties in another key order and with whitespace: the same fact', group: 'A',
    event: ev({ properties: '{ "store_id": "store_7", "currency": "USD", "amount": 42.5, "order_id": "o-1001" }' }) },
  { name: 'A with 42.50 written as 4.25e1: the same number, the same fact', group: 'A',
    event: ev({ properties: '{"order_id":"o-1001","amount":4.25e1,"currency":"USD","store_id":"store_7"}' }) },
  { name: 'A with another amount: a conflict', group: 'B', event: ev({ properties: '{"order_id":"o-1001","amount":99,"currency":"USD","store_id":"store_7"}' }) },
  { name: 'A with the email in other case: raw identity counts, a conflict', group: 'C',
    event: ev({ identity: { ...base.identity, email: 'buyer@example.com' } }) },
  { name: 'A with another occurredAt: a conflict', group: 'D', event: ev({ occurredAt: base.occurredAt + 1 }) },
  { name: 'occurredAt defaulted: occurredAt is ignored', group: 'E', event: ev({ occurredAtDefaulted: true, occurredAt: base.receivedAt }) },
  { name: 'E sent again later: same fact although occurredAt differs', group: 'E',
    event: ev({ occurredAtDefaulted: true, occurredAt: base.receivedAt + 3_600_000, receivedAt: base.receivedAt + 3_600_000 }) },
  { name: 'empty properties, device key only', group: 'F',
    event: ev({ eventType: 'product_viewed', properties: '{}', identity: { externalUserId: null, email: null, phone: null, deviceKey: 'dev-9' } }) },
  { name: 'non-ASCII, escapes and nesting in properties', group: 'G',
    event: ev({ eventType: 'cart_updated', properties: '{"note":"caf\\u00e9 \\"deluxe\\"\\n😀","tags":["a","b"],"nested":{"z":1,"a":[true,null]}}' }) },
  { name: 'G with the same properties written with raw UTF-8 and sorted keys: the same fact', group: 'G',
    event: ev({ eventType: 'cart_updated', properties: '{"nested":{"a":[true,null],"z":1},"note":"café \\"deluxe\\"\\n😀","tags":["a","b"]}' }) },
]

export function buildVectors() {
  const keys = keyCases.map((c) => {
    const bytes = encodeKey(c.tuple)
    return {
      name: c.name,
      tuple: c.tuple,
      keyHex: bytes.toString('hex'),
      partitions: Object.fromEntries(PARTITION_COUNTS.map((n) => [String(n), partitionFor(bytes, n)])),
      ...(c.sendable === false ? { sendable: false, why: c.why } : {}),
    }
  })
  const fingerprints = eventCases.map((c) => ({ name: c.name, sameFactGroup: c.group, event: c.event, fingerprint: fingerprintOf(c.event) }))
  return {
    description: 'Test vectors for docs/DIRECT-PRODUCERS.md. keys: tuple -> key bytes (hex of the UTF-8 canonical JSON array) '
      + '-> partition per partition count (Kafka murmur2, sign bit cleared, modulo). fingerprints: a CdpEvent value as '
      + 'written to the topic (occurredAt/receivedAt in epoch ms, properties as JSON text) -> the fingerprint the consumer '
      + 'computes; events in one sameFactGroup are the same fact (a repeat), different groups under one tuple conflict.',
    generatedBy: 'npx tsx scripts/wire-vectors.ts',
    partitionCounts: [...PARTITION_COUNTS],
    keys,
    fingerprints,
  }
}

/** the file's text: stable order, two-space indent, lone surrogates escaped (JSON.stringify does) */
export function vectorsText(): string {
  return `${JSON.stringify(buildVectors(), null, 2)}\n`
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = vectorsText()
  if (process.argv.includes('--check')) {
    const current = readFileSync(VECTORS_PATH, 'utf8')
    if (current !== text) { console.error(`${VECTORS_PATH} is out of date: run npx tsx scripts/wire-vectors.ts`); process.exit(1) }
    console.log(`${VECTORS_PATH} is up to date`)
  } else {
    writeFileSync(VECTORS_PATH, text)
    console.log(`wrote ${VECTORS_PATH}: ${buildVectors().keys.length} keys, ${buildVectors().fingerprints.length} fingerprints`)
  }
}
