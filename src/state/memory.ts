/**
 * In-memory state stores with the same rules as LMDB and Redis (and the same contract tests).
 * For unit tests of other parts that want a real-behaving store without files or a server; never
 * a production backend (nothing survives the process).
 */
import { CdpError } from '../errors.js'
import { decideAbandon, decideClaim, decideCommit, decideDedup, shouldRelease, type ClaimRecord } from './rules.js'
import type { ApiKeyRecord, FactRef, StateStores } from './types.js'

export interface MemoryStateData {
  claims: Map<string, ClaimRecord>
  dedup: Map<string, FactRef>
  /** key -> offset of the last bad record the fact was re-asserted after */
  reasserted: Map<string, string>
  keys: Map<string, ApiKeyRecord>
}

export function emptyMemoryState(): MemoryStateData {
  return { claims: new Map(), dedup: new Map(), reasserted: new Map(), keys: new Map() }
}

/** Pass the same `data` to a second call to see what the first one wrote (a "reopen"). */
export function createMemoryStateStores(data: MemoryStateData = emptyMemoryState()): StateStores {
  let closed = false
  const guard = (): void => {
    if (closed) throw new CdpError('state_store_unavailable', 'memory state store is closed')
  }
  // async wrappers so a guard failure becomes a rejection, like the real stores
  return {
    claims: {
      async claimMany(reqs, now, leaseMs) {
        guard()
        return reqs.map((req) => {
          const { outcome, write } = decideClaim(data.claims.get(req.key), req, now, leaseMs)
          if (write !== undefined) data.claims.set(req.key, write)
          return outcome
        })
      },
      async commitMany(items) {
        guard()
        for (const { key, eventId } of items) {
          const next = decideCommit(data.claims.get(key), eventId)
          if (next !== undefined) data.claims.set(key, next)
        }
      },
      async releaseMany(items) {
        guard()
        for (const { key, eventId } of items) if (shouldRelease(data.claims.get(key), eventId)) data.claims.delete(key)
      },
      async get(key) {
        guard()
        const rec = data.claims.get(key)
        return rec === undefined ? undefined : { state: rec.state, eventId: rec.eventId, claimedAt: rec.claimedAt }
      },
      async abandonMany(items) {
        guard()
        for (const { key, eventId } of items) {
          const next = decideAbandon(data.claims.get(key), eventId)
          if (next !== undefined) data.claims.set(key, next)
        }
      },
    },
    dedup: {
      async checkMany(items) {
        guard()
        return items.map(({ key, ref }) => {
          const { outcome, write } = decideDedup(data.dedup.get(key), ref)
          if (write !== undefined) data.dedup.set(key, { ...write })
          return outcome
        })
      },
      async get(key) {
        guard()
        const ref = data.dedup.get(key)
        return ref === undefined ? undefined : { ...ref }
      },
      async reassertedAfter(keys) {
        guard()
        return keys.map((k) => data.reasserted.get(k))
      },
      async markReasserted(items) {
        guard()
        for (const { key, after } of items) data.reasserted.set(key, after)
      },
      async markErased(keys) {
        guard()
        let n = 0
        for (const key of keys) {
          const cur = data.dedup.get(key)
          if (cur !== undefined) { data.dedup.set(key, { ...cur, erased: true }); n++ }
        }
        return n
      },
    },
    keys: {
      async putKey(rec) {
        guard()
        data.keys.set(rec.id, structuredClone(rec))
      },
      async getKey(id) {
        guard()
        const rec = data.keys.get(id)
        return rec === undefined ? undefined : structuredClone(rec)
      },
      async listKeys() {
        guard()
        return [...data.keys.values()].map((r) => structuredClone(r))
      },
    },
    async ping() {
      return !closed
    },
    async close() {
      closed = true
    },
  }
}
