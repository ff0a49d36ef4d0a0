import t from 'tap'
import { createStateStores } from '../../src/state/index.js'
import { testConfig } from '../helpers/config.js'
import { stateContract } from './contract.js'

// every test gets its own data dir (testConfig); reopening uses the same lmdb path
stateContract(t, (t) => {
  const config = testConfig(t, { state: { backend: 'lmdb' } })
  return () => createStateStores(config)
})

t.test('lmdb: a path that cannot be created fails with the store code', async (t) => {
  const config = testConfig(t, { state: { backend: 'lmdb', lmdbPath: '/proc/no-such-place/state' } })
  await t.rejects(createStateStores(config), { code: 'state_store_unavailable' })
})
