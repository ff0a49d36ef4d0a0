/**
 * An internal service writing facts straight to the events topic (docs/DIRECT-PRODUCERS.md).
 *
 *   npx tsx examples/direct-producer.ts
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
  const run = Date.now().toString(36)
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
  // concurrent sends are collected into one batch: one request, acks=-1, idempotent producer
  const sent = await Promise.all([1, 2, 3].map((n) => producer.send(earned(n))))
  for (const s of sent) console.log(`sent ${s.key} as ${s.eventId} (fingerprint ${s.fingerprint})`)

  // The outcome of a send that failed is unknown: send the same fact again. Reusing the event id
  // keeps it stable even after compaction; a new one would be skipped as a repeat all the same.
  const first = sent[0]!
  const retry = await producer.send({ ...earned(1), occurredAt: undefined }, { eventId: first.eventId })
  console.log(`sent ${retry.key} again as ${retry.eventId}: ${retry.fingerprint === first.fingerprint ? 'same fact, stored once' : 'ANOTHER payload: the consumer dead-letters it (tuple_conflict) and keeps the first'}`)
} finally {
  await producer.close()
}
