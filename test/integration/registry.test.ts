/**
 * The value schema's subject in the real registry: BACKWARD compatibility set, concurrent
 * start-ups agree on one id, and an incompatible change is refused.
 */
import t from 'tap'
import { SchemaCodec, valueSchemaText, valueSubject } from '../../src/avro/codec.js'
import { testConfig } from '../helpers/config.js'

void t.test('instances starting together register one id under BACKWARD', async (t) => {
  const cfg = testConfig(t)
  const codecs = Array.from({ length: 6 }, () => new SchemaCodec(cfg.schemaRegistry))
  const ids = await Promise.all(codecs.map((c) => c.init(cfg.kafka.topic)))
  t.equal(new Set(ids).size, 1, `one schema id: ${ids.join(',')}`)
  const subject = encodeURIComponent(valueSubject(cfg.kafka.topic))
  const conf = await (await fetch(`${cfg.schemaRegistry.url}/config/${subject}`)).json() as { compatibilityLevel: string }
  t.equal(conf.compatibilityLevel, 'BACKWARD')

  // a new required field without a default cannot read old records: refused
  const schema = JSON.parse(valueSchemaText()) as { fields: unknown[] }
  schema.fields.push({ name: 'mandatoryNewField', type: 'string' })
  const res = await fetch(`${cfg.schemaRegistry.url}/subjects/${subject}/versions`, {
    method: 'POST', headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schemaType: 'AVRO', schema: JSON.stringify(schema) }),
  })
  t.equal(res.status, 409, await res.text())
})

void t.test('an unreachable registry is a retriable 5xx-class error, not a validation error', async (t) => {
  const codec = new SchemaCodec({ url: 'http://127.0.0.1:9/apis/ccompat/v7', timeoutMs: 500 })
  await t.rejects(codec.init('cdp.nowhere', 1000), { code: 'schema_registry_unavailable', retriable: true })
})
