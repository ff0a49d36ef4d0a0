/** Kafka SASL/TLS and Redis AUTH/TLS: environment and config file -> validated config -> client options. */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../../src/config/index.js'
import { kafkaSecurity } from '../../../src/kafka/client.js'
import { redisSecurity } from '../../../src/state/redis-client.js'
import { tempDir } from '../../helpers/config.js'

void t.test('defaults: no SASL, no TLS, no Redis AUTH', async (t) => {
  const c = loadConfig({ env: {} })
  t.same(kafkaSecurity(c.kafka), {})
  t.same(redisSecurity(c.state), {})
})

void t.test('Kafka SASL and TLS from the environment reach the kafkajs options', async (t) => {
  const dir = tempDir(t)
  for (const f of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(join(dir, f), `PEM ${f}`)
  const c = loadConfig({
    env: {
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'cdp', KAFKA_SASL_PASSWORD: 's3cret',
      KAFKA_TLS: 'true', KAFKA_TLS_CA_FILE: join(dir, 'ca.pem'), KAFKA_TLS_CERT_FILE: join(dir, 'cert.pem'), KAFKA_TLS_KEY_FILE: join(dir, 'key.pem'),
      KAFKA_TLS_REJECT_UNAUTHORIZED: 'false',
    },
  })
  t.same(kafkaSecurity(c.kafka), {
    sasl: { mechanism: 'scram-sha-512', username: 'cdp', password: 's3cret' },
    ssl: { rejectUnauthorized: false, ca: 'PEM ca.pem', cert: 'PEM cert.pem', key: 'PEM key.pem' },
  })
  const plain = loadConfig({ env: { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p', KAFKA_TLS: '1' } })
  t.same(kafkaSecurity(plain.kafka), { sasl: { mechanism: 'plain', username: 'u', password: 'p' }, ssl: { rejectUnauthorized: true } })
})

void t.test('Redis AUTH and TLS from a config file reach the ioredis options', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'ca.pem'), 'PEM ca')
  const file = join(dir, 'cdp.json')
  writeFileSync(file, JSON.stringify({ state: { backend: 'redis', redisUsername: 'cdp', redisPassword: 'pw', redisTls: { enabled: true, caFile: join(dir, 'ca.pem') } } }))
  const c = loadConfig({ env: { CDP_CONFIG: file } })
  t.same(redisSecurity(c.state), { username: 'cdp', password: 'pw', tls: { rejectUnauthorized: true, ca: 'PEM ca' } })
  const fromEnv = loadConfig({ env: { REDIS_PASSWORD: 'only-password' } })
  t.same(redisSecurity(fromEnv.state), { password: 'only-password' })
})

void t.test('invalid security settings are refused at load, listing each problem without the secrets', async (t) => {
  const err = (env: Record<string, string>) => {
    try { loadConfig({ env }); return '' } catch (e) { return (e as Error).message }
  }
  const unknownMech = err({ KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'hunter2' })
  t.match(unknownMech, /\/kafka\/sasl\/mechanism/)
  t.notMatch(unknownMech, /hunter2/)
  t.match(err({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_PASSWORD: 'hunter2' }), /\/kafka\/sasl\/username/)
  t.match(err({ KAFKA_TLS: 'maybe' }), /KAFKA_TLS: expected true or false/)
  t.match(err({ REDIS_TLS: 'true', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' }), /redisTls\/caFile file not found/)
  t.match(err({ KAFKA_TLS: 'true', KAFKA_TLS_CERT_FILE: '/etc/hostname' }), /certFile and keyFile go together/)
})
