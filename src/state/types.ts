/**
 * State stores shared by API and consumer instances. Two implementations must behave the same:
 * LMDB (embedded, one process, transactions) and Redis (scale-out, atomic Lua scripts).
 * One contract test suite (test/state/contract.ts) runs against both.
 *
 * Keys passed in are already-built dedup keys (see src/avro/key.ts): the stable string form of
 * (tenant, source, externalEventId). Stores never parse them.
 */

// ---------- idempotency claims (HTTP edge) ----------

export interface ClaimRequest {
  key: string
  /** event id to use when this request wins the claim */
  eventId: string
  /** hash of the normalized payload: same business fact <=> same fingerprint */
  fingerprint: string
}

export type ClaimOutcome =
  /** this request owns the tuple now (new claim, or takeover of an abandoned pending claim):
   *  produce under `eventId`, then commit (or release on failure) */
  | { outcome: 'claimed'; eventId: string; takeover: boolean }
  /** the fact was accepted before: answer duplicate with the original id */
  | { outcome: 'duplicate'; eventId: string }
  /** another request with the same fingerprint is producing right now: wait and ask again */
  | { outcome: 'in_flight'; eventId: string }
  /** same tuple, different payload: 409 idempotency_conflict */
  | { outcome: 'conflict'; eventId: string }

export interface ClaimStore {
  /**
   * Items are decided in order; a later item with the same key sees the earlier item's claim.
   * `now` is the caller's clock (ms). A store shared by several processes judges leases on one
   * clock of its own instead (Redis: the server's TIME), so processes with skewed clocks agree on
   * whether a claim is abandoned; a store of one process (LMDB, memory) uses `now`.
   */
  claimMany(reqs: ClaimRequest[], now: number, leaseMs: number): Promise<ClaimOutcome[]>
  /** mark produced; only the claim holding `eventId` is changed */
  commitMany(items: { key: string; eventId: string }[]): Promise<void>
  /** forget a pending claim after a produce that definitely did not happen, so a retry claims afresh */
  releaseMany(items: { key: string; eventId: string }[]): Promise<void>
  /** the claim under `key`, read only (GET /v1/cdp/events/{source}/{externalEventId}) */
  get(key: string): Promise<ClaimInfo | undefined>
  /**
   * A produce whose outcome is unknown (timeout, connection lost after the request was written):
   * the record may be on the topic, so the claim keeps its event id, but its lease ends now, so
   * the next request for the tuple takes it over at once and produces again under the SAME id
   * (the consumer absorbs the repeat). Only a pending claim holding `eventId` changes.
   */
  abandonMany(items: { key: string; eventId: string }[]): Promise<void>
}

export interface ClaimInfo {
  state: 'pending' | 'committed'
  eventId: string
  /** ms since epoch of the claim (or of its latest takeover) */
  claimedAt: number
}

// ---------- consumer dedup (first fact per tuple wins) ----------

export interface FactRef {
  eventId: string
  fingerprint: string
  partition: number
  offset: string
  /**
   * set by an erasure (src/privacy): the fact was erased for good. The record keeps only what
   * dedup needs (event id, fingerprint, position), so the same fact met again (a client retry, a
   * replay over a topic not yet compacted) is recognised and never stored again.
   */
  erased?: boolean
}

export type DedupOutcome =
  /** first fact for the tuple (`redelivered` false), or the very record that was first, delivered
   *  again after a crash (`redelivered` true: its rows may already be in ClickHouse) */
  | { outcome: 'first'; redelivered: boolean }
  /** same fact seen before at another position: skip */
  | { outcome: 'repeat'; original: FactRef }
  /** same tuple, different payload: dead-letter, keep the original */
  | { outcome: 'conflict'; original: FactRef }
  /** the tuple's fact was erased: whatever comes under it is skipped, never stored or re-asserted */
  | { outcome: 'erased'; original: FactRef }

export interface DedupStore {
  /** decided in order; a later item with the same key sees the earlier one */
  checkMany(items: { key: string; ref: FactRef }[]): Promise<DedupOutcome[]>
  get(key: string): Promise<FactRef | undefined>
  /**
   * Re-assertions (src/pipeline/dedup-step.ts): the offset of the last bad record under each key
   * after which the first fact was produced again, or undefined. All of a key's records sit on
   * one partition, so an offset is enough. A consumer meeting that bad record again (a fresh
   * group, a replay) finds the topic already ends with the fact and produces nothing.
   */
  reassertedAfter(keys: string[]): Promise<(string | undefined)[]>
  /** record re-assertions made, after they are on the topic */
  markReasserted(items: { key: string; after: string }[]): Promise<void>
  /**
   * Erasure: mark the facts under these keys erased (see FactRef.erased). Keys without a stored
   * fact are left alone. Returns how many records were marked (already marked ones count).
   */
  markErased(keys: string[]): Promise<number>
}

// ---------- API keys ----------

export interface ApiKeyRecord {
  id: string
  /** null: an operator key, bound to no tenant (src/auth/keys.ts); stored as JSON null by every backend */
  tenant: string | null
  /** sha256 of the secret part, hex */
  secretHash: string
  permissions: string[]
  /** empty: any source */
  sources: string[]
  createdAt: string
  expiresAt: string | null
  revokedAt: string | null
  label: string | null
}

export interface KeyStore {
  putKey(rec: ApiKeyRecord): Promise<void>
  getKey(id: string): Promise<ApiKeyRecord | undefined>
  listKeys(): Promise<ApiKeyRecord[]>
}

export interface StateStores {
  claims: ClaimStore
  dedup: DedupStore
  keys: KeyStore
  /** true when the backing store answers */
  ping(): Promise<boolean>
  close(): Promise<void>
}
