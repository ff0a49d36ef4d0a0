/**
 * The Kafka key of a fact: the UTF-8 bytes of the JSON array [tenant, source, externalEventId].
 *
 * Why not an Avro key: Confluent wire format embeds the registry's schema id, and ids differ per
 * registry (and change when one is rebuilt). The key decides the partition and what compaction
 * keeps, so its bytes must never change for a tuple. A JSON array of three strings is unambiguous
 * (no separator can collide) and needs no registry. test/unit/avro/key.test.ts pins the bytes.
 *
 * `FactKey` carries the three forms a key takes (tuple, canonical string for the state stores,
 * bytes for Kafka), made once, so code that holds a key never converts between them.
 */
export interface DedupTuple {
  tenant: string
  source: string
  externalEventId: string
}

/** what reading key bytes can find */
export type KeyRead =
  | { ok: true; key: FactKey }
  /** not a JSON array of three non-empty strings */
  | { ok: false; problem: 'not_a_tuple' }
  /** a tuple, but other bytes than the canonical ones (spaces, other escaping): another Kafka key */
  | { ok: false; problem: 'not_canonical'; tuple: DedupTuple }

export class FactKey {
  private cachedBytes: Buffer | undefined

  private constructor(
    readonly tuple: Readonly<DedupTuple>,
    /** the canonical string: the dedup key of the state stores, and the bytes as text */
    readonly text: string,
    bytes?: Buffer,
  ) {
    this.cachedBytes = bytes
  }

  static of(t: DedupTuple): FactKey {
    const tuple = Object.freeze({ tenant: t.tenant, source: t.source, externalEventId: t.externalEventId })
    return new FactKey(tuple, keyString(tuple))
  }

  /** Reads a record's key; only the canonical bytes of a tuple make a key. */
  static read(bytes: Buffer | null | undefined): KeyRead {
    const tuple = decodeKey(bytes)
    if (tuple === undefined) return { ok: false, problem: 'not_a_tuple' }
    const key = FactKey.of(tuple)
    // the bytes, not just the tuple: other bytes for the same tuple are another partition and
    // another compaction slot for one fact
    if (!key.bytes.equals(bytes!)) return { ok: false, problem: 'not_canonical', tuple }
    return { ok: true, key }
  }

  /** the Kafka key bytes */
  get bytes(): Buffer {
    this.cachedBytes ??= Buffer.from(this.text, 'utf8')
    return this.cachedBytes
  }

  get tenant(): string {
    return this.tuple.tenant
  }

  /** true when `t` names the same fact (tenant, source and externalEventId all equal) */
  matches(t: DedupTuple): boolean {
    return t.tenant === this.tuple.tenant && t.source === this.tuple.source && t.externalEventId === this.tuple.externalEventId
  }
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
