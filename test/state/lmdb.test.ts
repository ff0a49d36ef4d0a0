import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createStateStores } from '../../src/state/index.js'
import { testConfig } from '../helpers/config.js'
import { stateContract } from './contract.js'

// every test gets its own data dir (testConfig); reopening uses the same lmdb path
stateContract(t, (t) => {
  const config = testConfig(t, { state: { backend: 'lmdb' } })
  return () => createStateStores(config)
})

void t.test('lmdb: a path that cannot be created fails with the store code', async (t) => {
  const base = testConfig(t)
  const file = join(base.dataDir, 'a-file')
  writeFileSync(file, 'not a directory')
  const config = testConfig(t, { state: { backend: 'lmdb', lmdbPath: join(file, 'state') } })
  await t.rejects(createStateStores(config), { code: 'state_store_unavailable' })
})
