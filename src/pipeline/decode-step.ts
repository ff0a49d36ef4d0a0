/**
 * Decode step: the record's key must be the canonical key of a tuple, on the partition its key
 * names (partition-step.ts), and its value a registered schema version in Confluent Avro wire
 * format. The partition is checked before the value: a record on the wrong partition is never
 * judged there, whatever its value.
 */
import type { CdpEvent } from '../avro/event.js'
import { FactKey } from '../avro/key.js'
import type { InboundRecord } from '../kafka/consumer.js'
import type { ProcessorDeps } from './deps.js'
import { deadLetter, ok, skip, type Outcome } from './outcome.js'
import { partitionStep } from './partition-step.js'

export interface Decoded {
  record: InboundRecord
  key: FactKey
  event: CdpEvent
}

export function decodeStep(deps: Pick<ProcessorDeps, 'codec' | 'partitions'>): (record: InboundRecord) => Promise<Outcome<Decoded>> {
  const onPartition = partitionStep(deps)
  return async (record) => {
    const read = FactKey.read(record.key)
    if (!read.ok) {
      return read.problem === 'not_a_tuple'
        ? deadLetter({ record, tenant: null, reason: 'bad_key', message: 'key is not the JSON array ["tenant","source","externalEventId"]' })
        : deadLetter({
          record, tenant: read.tuple.tenant, reason: 'bad_key',
          message: 'key is not in canonical form: the UTF-8 bytes of JSON.stringify([tenant, source, externalEventId])',
        })
    }
    // a tombstone (null value under a fact's key) is an erasure's instruction to compaction, not a
    // fact: nothing to store, nothing to dead-letter. (Under a live fact, one nobody asked for, the
    // processor still re-asserts the fact after it; an erasure marks its facts erased first.)
    if (record.value === null) return skip('tombstone', record)
    const placed = onPartition(record, read.key)
    if (placed.kind !== 'ok') return placed
    const key = placed.value
    const r = await deps.codec.decode(record.value)
    if (!r.ok) return deadLetter({ record, key, tenant: key.tenant, reason: r.reason, message: r.message })
    return ok({ record, key, event: r.event })
  }
}
