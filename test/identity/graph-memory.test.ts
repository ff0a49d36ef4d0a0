import t from 'tap'
import { createMemoryIdentityGraph, emptyMemoryGraph } from '../../src/identity/graph.js'
import { graphContract } from './graph-contract.js'

// the reference implementation obeys the same rules it is compared with
graphContract(t, (_t, opts) => {
  const data = emptyMemoryGraph()
  return async () => createMemoryIdentityGraph(opts, data)
})
