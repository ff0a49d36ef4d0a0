/**
 * `cdp tail --tenant T`: one line per event of the tenant as it arrives on the events topic,
 * decoded, with its outcome (written, duplicate, dead letter and reason, or pending), identity
 * values masked. Follows the topic and the DLQ topic from their current end with a throwaway
 * consumer group (the service's group and offsets are never touched) and reads outcomes from the
 * state store the consumer writes. Runs until Ctrl-C, `--max N` lines or `--timeout S` seconds.
 */
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import type { Config } from '../../config/index.js'
import { createLogger } from '../../observability/logger.js'
import { SchemaCodec } from '../../avro/codec.js'
import { createStateStores } from '../../state/index.js'
import { createKafka, tailTopics } from '../../kafka/index.js'
import { TailTracker } from '../../pipeline/tail.js'
import type { Command, Out } from '../command.js'

const USAGE = [
  'usage: cdp tail --tenant T [--source S] [--event-type E] [--max N] [--timeout S] [--outcome-wait S]',
  '  prints each new event of tenant T on the events topic: receipt time, tenant, source, externalEventId,',
  '  eventType, event id, partition@offset, identities (masked) and the outcome: written, duplicate <event id>,',
  '  dead_letter <reason>, or pending when the consumer has not decided within --outcome-wait (default 10 s).',
  '  Stops on Ctrl-C, after --max lines or after --timeout seconds.',
]

export const tailCommand: Command = {
  name: 'tail',
  summary: 'follow a tenant\'s events as they arrive, with their outcome',
  usage: USAGE,
  run: (args, { out, config }) => tail(config(), args, out),
}

const positive = (s: string | undefined, name: string): number | undefined | Error => {
  if (s === undefined) return undefined
  const n = Number(s)
  return Number.isFinite(n) && n > 0 ? n : new Error(`--${name} must be a positive number`)
}

export async function tail(config: Readonly<Config>, args: string[], out: Out, signal?: AbortSignal): Promise<number> {
  let values
  try {
    values = parseArgs({ args, options: {
      tenant: { type: 'string' }, source: { type: 'string' }, 'event-type': { type: 'string' },
      max: { type: 'string' }, timeout: { type: 'string' }, 'outcome-wait': { type: 'string' },
    } }).values
  } catch (err) { out(`tail: ${(err as Error).message}`); return 2 }
  if (values.tenant === undefined || values.tenant === '') { for (const l of USAGE) out(l); return 2 }
  const max = positive(values.max, 'max')
  const timeout = positive(values.timeout, 'timeout')
  const wait = positive(values['outcome-wait'], 'outcome-wait')
  for (const v of [max, timeout, wait]) if (v instanceof Error) { out(`tail: ${v.message}`); return 2 }

  const log = createLogger({ logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel })
  const stores = await createStateStores(config)
  const kafka = createKafka(config, log, '-tail')
  const codec = new SchemaCodec(config.schemaRegistry)
  const tracker = new TailTracker({
    filter: { tenant: values.tenant, ...(values.source === undefined ? {} : { source: values.source }), ...(values['event-type'] === undefined ? {} : { eventType: values['event-type'] }) },
    decode: async (v) => { const r = await codec.decode(v); return r.ok ? r.event : undefined },
    firstFact: (key) => stores.dedup.get(key),
    outcomeWaitMs: ((wait as number | undefined) ?? 10) * 1000,
  })
  const { topic, deadLetterTopic } = config.kafka
  let tailing
  try {
    tailing = await tailTopics(kafka, [topic, deadLetterTopic], async (r) => {
      if (r.topic === topic) await tracker.onEvent(r)
      else tracker.onDeadLetter(r)
    }, `${config.kafka.consumerGroup}-tail-${Date.now()}-${randomBytes(3).toString('hex')}`)
  } catch (err) {
    await stores.close()
    out(`tail: cannot follow ${topic}: ${(err as Error).message}`)
    return 1
  }
  out(`tail: following ${topic} for tenant ${values.tenant} from now (Ctrl-C to stop)`)

  let stop = false
  const onSignal = () => { stop = true }
  process.once('SIGINT', onSignal)
  signal?.addEventListener('abort', onSignal)
  const until = timeout === undefined ? Infinity : Date.now() + (timeout as number) * 1000
  let printed = 0
  try {
    while (!stop && Date.now() < until && (max === undefined || printed < (max as number))) {
      for (const line of await tracker.poll()) {
        out(line)
        if (++printed === max) break
      }
      await new Promise((r) => setTimeout(r, 200))
    }
  } finally {
    process.off('SIGINT', onSignal)
    signal?.removeEventListener('abort', onSignal)
    await tailing.stop().catch(() => undefined)
    await stores.close()
  }
  if (tracker.pending > 0 && (max === undefined || printed < (max as number))) out(`tail: ${tracker.pending} event(s) still without an outcome`)
  return 0
}
