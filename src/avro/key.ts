/**
 * The Kafka key of a fact: the UTF-8 bytes of the JSON array [tenant, source, externalEventId].
 *
 * Why not an Avro key: Confluent wire format embeds the registry's schema id, and ids differ per
 * registry (and change when one is rebuilt). The key decides the partition and what compaction
 * keeps, so its bytes must never change for a tuple. A JSON array of three strings is unambiguous
 * (no separator can collide) and needs no registry. test/unit/avro/key.test.ts pins the bytes.
 */
export interface DedupTuple {
  tenant: string
  source: string
  externalEventId: string
}

export function encodeKey(t: DedupTuple): Buffer {
  return Buffer.from(keyString(t), 'utf8')
}

/** the same bytes as a string: the dedup key used by the state stores */
export function keyString(t: DedupTuple): string {
  // JSON.stringify of strings is deterministic: same escaping for the same input, no whitespace
  return JSON.stringify([t.tenant, t.source, t.externalEventId])
}

export function decodeKey(buf: Buffer | string | null | undefined): DedupTuple | undefined {
  if (buf === null || buf === undefined) return undefined
  try {
    const v: unknown = JSON.parse(typeof buf === 'string' ? buf : buf.toString('utf8'))
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'string' && x.length > 0)) {
      return { tenant: v[0] as string, source: v[1] as string, externalEventId: v[2] as string }
    }
  } catch {
    // not JSON: the caller dead-letters the record as bad_key
  }
  return undefined
}
