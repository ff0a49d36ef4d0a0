/**
 * An internal service writing facts straight to the events topic (docs/DIRECT-PRODUCERS.md).
 *
 *   npx tsx examples/direct-producer.ts [RUN]
 *
 * It sends three facts, repeats one (stored once), then sends a conflicting payload under the
 * first fact's tuple: the consumer keeps the first fact and dead-letters the conflict as
 * tuple_conflict. RUN (default: the time) goes into every externalEventId. The last line of
 * output is a JSON summary (test/integration/examples.test.ts reads it).
 *
 * Brokers, topic and registry come from the service's own config (KAFKA_BROKERS, KAFKA_TOPIC,
 * SCHEMA_REGISTRY_URL or a CDP_CONFIG file), so this talks to whatever `cdp serve` would.
 * Then, with the service running: node bin/cdp.js query "SELECT * FROM cdp.events WHERE source = 'svc.loyalty'"
 */
import { loadConfig } from '../src/config/index.js'
import { createLogger } from '../src/observability/logger.js'
import { createKafka } from '../src/kafka/client.js'
import { ensureTopics } from '../src/kafka/admin.js'
import { SchemaCodec } from '../src/avro/codec.js'
import { createDirectProducer, type DirectEvent } from '../src/producer/index.js'

const config = loadConfig()

// What `cdp serve` does at start-up: create the topic (compacted) and register the value schema.
// A real direct producer leaves both to the service and only looks the schema id up; they are
// here so the example also runs on a stack where the service has not started yet.
await ensureTopics(createKafka(config, createLogger({ logLevel: 'warn' })), config)
await new SchemaCodec(config.schemaRegistry).init(config.kafka.topic)

const producer = await createDirectProducer({
  brokers: [...config.kafka.brokers],
  topic: config.kafka.topic,
  registryUrl: config.schemaRegistry.url,
})
try {
  const run = process.argv[2] ?? Date.now().toString(36)
  // use a source of your own: the HTTP API's idempotency claims do not see direct writes
  const earned = (n: number): DirectEvent => ({
    tenant: 'acme',
    source: 'svc.loyalty',
    externalEventId: `ledger-${run}-${n}`,
    eventType: 'loyalty_points_earned',
    occurredAt: new Date(),
    identity: { externalUserId: 'L-123456789', email: 'customer@example.com' },
    properties: { points: 10 * n, balance: 100 + 10 * n, reason: 'purchase' },
  })

  console.log(`topic ${config.kafka.topic}, value schema id ${producer.schemaId} (looked up in ${config.schemaRegistry.url})`)
  const facts = [1, 2, 3].map(earned)
  // concurrent sends are collected into one batch: one request, acks=-1, idempotent producer
  const sent = await Promise.all(facts.map((f) => producer.send(f)))
  for (const s of sent) console.log(`sent ${s.key} as ${s.eventId} (fingerprint ${s.fingerprint})`)

  // A send that failed has an unknown outcome: send the same fact again (same externalEventId,
  // same payload). The consumer stores it once. Reusing the event id keeps the id stable even
  // if compaction later keeps only this copy.
  const retry = await producer.send(facts[0]!, { eventId: sent[0]!.eventId })
  console.log(`sent ${retry.key} again as ${retry.eventId}, fingerprint ${retry.fingerprint === sent[0]!.fingerprint ? 'unchanged: one fact' : 'changed'}`)

  // The same tuple with another payload is a conflict, not a correction: the consumer keeps the
  // first fact and dead-letters this one (tuple_conflict). Send corrections as new facts.
  const conflict = await producer.send({ ...facts[0]!, properties: { points: 999, reason: 'adjustment' } })
  console.log(`sent ${conflict.key} with another payload (fingerprint ${conflict.fingerprint}): expect a tuple_conflict dead letter`)
  console.log(JSON.stringify({ topic: config.kafka.topic, facts: sent.map((s, i) => ({ externalEventId: facts[i]!.externalEventId, eventId: s.eventId, key: s.key })), conflict: { eventId: conflict.eventId, key: conflict.key } }))
} finally {
  await producer.close()
}
