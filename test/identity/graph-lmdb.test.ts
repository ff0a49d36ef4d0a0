import t from 'tap'
import { createIdentityGraph } from '../../src/identity/index.js'
import { testConfig } from '../helpers/config.js'
import { graphContract } from './graph-contract.js'

// each test: its own data dir; reopening opens the same LMDB environment again
graphContract(t, (t, opts) => {
  const config = testConfig(t, { state: { backend: 'lmdb' }, identity: { maxProfilesPerDevice: opts.maxProfilesPerDevice } })
  return () => createIdentityGraph(config, { replayTtlMs: opts.replayTtlMs })
})
