import t from 'tap'
import { createMemoryStateStores, emptyMemoryState } from '../../src/state/memory.js'
import { stateContract } from './contract.js'

// the fake other components' unit tests use must obey the same contract
stateContract(t, () => {
  const data = emptyMemoryState()
  return async () => createMemoryStateStores(data)
})
