import t from 'tap'
import { CdpError, wrapForeign } from '../../src/errors.js'
import { registryErrorCode } from '../../src/avro/codec.js'
import { stateStoreErrorCode } from '../../src/state/errors.js'
import { clickHouseErrorCode } from '../../src/clickhouse/errors.js'
import { kafkaError } from '../../src/kafka/errors.js'

void t.test('wrapForeign: a CdpError passes through, a foreign error gets the code, the operation and its cause', async (t) => {
  const own = new CdpError('timeout', 'already ours')
  t.equal(wrapForeign(own, 'x', 'kafka_unavailable'), own)
  const cause = new Error('ECONNREFUSED 127.0.0.1:1')
  const wrapped = wrapForeign(cause, 'sending a batch', 'kafka_unavailable', { retryAfter: 1 })
  t.equal(wrapped.code, 'kafka_unavailable')
  t.equal(wrapped.message, 'sending a batch: ECONNREFUSED 127.0.0.1:1')
  t.equal(wrapped.cause, cause)
  t.equal(wrapped.retryAfter, 1)
  t.equal(wrapped.retriable, true)
})

void t.test('a classifier that declines leaves the error as it was', async (t) => {
  const syntax = Object.assign(new Error('Syntax error'), { code: '62', type: 'SYNTAX_ERROR' })
  t.equal(wrapForeign(syntax, 'query', clickHouseErrorCode), syntax, 'a bad statement is not unavailability')
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  const w = wrapForeign(refused, 'insert', clickHouseErrorCode)
  t.ok(w instanceof CdpError && w.code === 'clickhouse_unavailable')
})

void t.test('per-backend classifiers', async (t) => {
  // an unreachable registry can surface as HTTP 400 without a JSON verdict: still unavailable
  t.equal(registryErrorCode(Object.assign(new Error('Bad Request'), { name: 'ResponseError', status: 400 })), 'schema_registry_unavailable')
  t.equal(registryErrorCode(Object.assign(new Error('incompatible'), { name: 'ConfluentSchemaRegistryCompatibilityError' })), 'contract_incompatible')
  t.equal(stateStoreErrorCode(Object.assign(new Error('ERR Error running script (call to f_x): @user_script:1: bad'), { name: 'ReplyError' })), 'internal_error')
  t.equal(stateStoreErrorCode(Object.assign(new Error('LOADING Redis is loading the dataset in memory'), { name: 'ReplyError' })), 'state_store_unavailable')
  t.equal(stateStoreErrorCode(new Error('Connection is closed.')), 'state_store_unavailable')
  t.equal(kafkaError(new Error('leader not available'), 'produce').code, 'kafka_unavailable')
})
