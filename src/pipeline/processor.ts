/**
 * The consumer's work for one batch (one partition's records, or several partitions' ready at the
 * same time: grouped.ts), as steps over one outcome type (outcome.ts):
 *
 *   decode-step    key + value (any registered schema version)  -> dead letter: bad_key, not_avro, unknown_schema, bad_avro
 *   validate-step  the contract again (direct producers skip the API) -> dead letter: key_mismatch, contract_violation, no_identity
 *   suppress-step  identities of erased people (src/privacy)   -> dead letter: suppressed (value dropped); skip: erased
 *   dedup-step     first fact per tuple wins                   -> repeat: skip; conflict: dead letter + original re-asserted
 *                  (any dead letter under the key of a stored fact also re-asserts it: compaction keeps the last record)
 *   existing-step  facts ClickHouse already holds               -> skip
 *   resolve-step   identity resolution (global graph)
 *   write-step     rows to ClickHouse, idempotently
 *   dead-letter-step  dead_letters rows, DLQ topic, re-assertions -> then the runner commits the offsets
 *
 * Expected outcomes are values; only infrastructure trouble throws, as a retriable CdpError, and the
 * runner retries the same records without committing.
 *
 * Exactly once: every fact maps to one partition, so one consumer owns it at a time. For records
 * the dedup store has seen before at the same position (a re-delivery after a crash) and in a
 * replay, the processor asks ClickHouse which of those tuples it already holds (the table's
 * primary key) and inserts only the others; the insert also carries a dedup token from
 * the batch's offset range. A crash between insert and commit therefore re-inserts nothing, and so
 * does a replay. ReplacingMergeTree on the tuple stays as the last line of defence.
 */
import type { InboundRecord } from '../kafka/consumer.js'
import type { ProcessorDeps } from './deps.js'
import { decodeStep } from './decode-step.js'
import { validateStep, type Valid } from './validate-step.js'
import { suppressLettersStep, suppressStep, type RefusedEvent } from './suppress-step.js'
import { pseudonymizeFacts, withoutValues } from './pseudonymize.js'
import { dedupStep, type UnderKey } from './dedup-step.js'
import { FactKey } from '../avro/key.js'
import { existingStep } from './existing-step.js'
import { resolveStep } from './resolve-step.js'
import { batchToken, writeStep } from './write-step.js'
import { deadLetterStep } from './dead-letter-step.js'
import { sortOutcomes, type DeadLetter } from './outcome.js'

export type { BatchObservation, IdentityResolution, IdentityStep, ProcessorDeps } from './deps.js'
export type { DeadLetter, DeadLetterReason } from './outcome.js'

export interface BatchOutcome {
  written: number
  repeats: number
  deadLetters: number
  conflicts: number
}

export type StepTimings = { decode: number; dedup: number; existing: number; identity: number; insert: number; deadLetters: number }

export type Steps = ReturnType<typeof buildSteps>

/** the steps over their dependencies, built once per processor */
export function buildSteps(deps: ProcessorDeps) {
  return {
    decode: decodeStep(deps),
    validate: validateStep(deps),
    suppress: suppressStep(deps),
    suppressLetters: suppressLettersStep(deps),
    pseudonymize: pseudonymizeFacts(deps),
    strip: withoutValues(deps),
    tombstone: async (keys: string[]) => { if (keys.length > 0 && deps.tombstone !== undefined) await deps.tombstone(keys) },
    dedup: dedupStep(deps),
    existing: existingStep(deps),
    resolve: resolveStep(deps),
    write: writeStep(deps),
    deadLetters: deadLetterStep(deps),
  }
}

/**
 * Folds the steps over one partition batch, in offset order. `lap(step)` is called after each
 * step, for the timings. Side effects in this order: dedup store, identity graph, ClickHouse
 * (identities, merges, aliases, events), graph forget, dead_letters rows, DLQ topic, re-assertions.
 */
export async function processBatch(
  steps: Steps, mode: ProcessorDeps['mode'], records: InboundRecord[], lap: (step: keyof StepTimings) => void = () => undefined,
  observe?: ProcessorDeps['observe'],
): Promise<BatchOutcome> {
  const letters: DeadLetter[] = []
  const checked: Valid[] = []
  const refused: RefusedEvent[] = []
  /** tombstones: skipped, but one under a live fact's key still calls for a re-assertion */
  const tombstones: UnderKey[] = []
  for (const record of records) {
    const d = await steps.decode(record)
    if (d.kind === 'skip' && d.why === 'tombstone') {
      const read = FactKey.read(record.key)
      if (read.ok) tombstones.push({ record, key: read.key, reason: 'tombstone' })
      continue
    }
    const v = d.kind === 'ok' ? steps.validate(d.value) : d
    if (v.kind === 'ok') checked.push(v.value)
    else if (v.kind === 'dead_letter') {
      // decoded but refused: its letter may hold an erased person's data (suppress-step.ts)
      if (d.kind === 'ok' && v.letter.key !== undefined) refused.push({ letter: v.letter, event: d.value.event })
      else letters.push(v.letter)
    }
  }
  const suppressed = await steps.suppress(checked)
  const kept = sortOutcomes(suppressed.outcomes)
  const valid = kept.ok
  const refusedLetters = await steps.suppressLetters(refused)
  letters.push(...refusedLetters.letters, ...kept.deadLetters)
  // dead letters are written in offset order (the row order of the batch does not matter to
  // ClickHouse, but the DLQ topic and the logs read better in order)
  letters.sort((a, b) => a.record.partition - b.record.partition || (BigInt(a.record.offset) < BigInt(b.record.offset) ? -1 : 1))
  lap('decode')

  const deduped = await steps.dedup(valid, [...letters, ...tombstones])
  const unique = sortOutcomes(deduped.outcomes)
  const conflicts = unique.deadLetters.length
  letters.push(...unique.deadLetters)
  lap('dedup')

  const toWrite = steps.pseudonymize(sortOutcomes(await steps.existing(unique.ok)).ok)
  lap('existing')
  const resolved = await steps.resolve(toWrite)
  lap('identity')

  const token = batchToken(mode, records)
  const written = await steps.write(resolved, token)
  lap('insert')
  await steps.deadLetters(steps.strip(letters), deduped.reassert, token)
  // after the dead letters are written: a crash before this only leaves a record a replay suppresses again
  await steps.tombstone([...new Set([...suppressed.tombstones, ...refusedLetters.tombstones])])
  lap('deadLetters')
  observe?.({ records: records.length, skipped: unique.skipped.map((s) => s.why), deadLetters: letters.map((l) => ({ reason: l.reason, tenant: l.tenant })) })
  return { written, repeats: unique.skipped.filter((s) => s.why !== 'erased').length, deadLetters: letters.length, conflicts }
}

export class BatchProcessor {
  /** totals since start */
  readonly totals: BatchOutcome = { written: 0, repeats: 0, deadLetters: 0, conflicts: 0 }
  /** milliseconds spent per step since start: where a batch's time goes (benchmarks print it) */
  readonly timings: StepTimings = { decode: 0, dedup: 0, existing: 0, identity: 0, insert: 0, deadLetters: 0 }
  /** batches processed since start (each one insert per table it has rows for) */
  batches = 0
  private readonly steps: Steps

  constructor(private readonly deps: ProcessorDeps) {
    this.steps = buildSteps(deps)
  }

  async process(records: InboundRecord[]): Promise<number> {
    const out = await this.processBatch(records)
    this.totals.written += out.written
    this.totals.repeats += out.repeats
    this.totals.deadLetters += out.deadLetters
    this.totals.conflicts += out.conflicts
    return records.length
  }

  async processBatch(records: InboundRecord[]): Promise<BatchOutcome> {
    this.batches++
    let mark = performance.now()
    const lap = (step: keyof StepTimings) => {
      const now = performance.now()
      this.timings[step] += now - mark
      mark = now
    }
    return processBatch(this.steps, this.deps.mode, records, lap, this.deps.observe)
  }
}
