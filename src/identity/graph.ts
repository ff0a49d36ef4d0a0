/**
 * The identity graph: which normalized identities belong to which profile, per tenant.
 *
 * Events of one person land on many partitions and consumers, so the graph lives in one
 * transactional store: LMDB (one write transaction per resolveMany call, graph-lmdb.ts) or Redis
 * (one Lua script per resolveMany call, graph-redis.ts). Both run the rules below; the memory
 * implementation here is the reference the tests compare them with.
 *
 * RULES
 *
 * 1. One event, one profile. The usable identities of an event (after normalization and the
 *    limits below) all end up linked to one profile: known identities' profiles are merged,
 *    unknown identities are linked to the result.
 * 2. Order-independent grouping. Without limits, the graph is the union of every event's
 *    identity set: profiles are the connected components of "appeared in the same event".
 *    Union does not depend on the order of events, so neither does the final grouping (a
 *    property test checks this on both stores).
 * 3. Deterministic ids. A new profile's id is derived from (tenant, first usable identity of the
 *    event in the order EXTERNAL < EMAIL < PHONE < DEVICE, then value), a UUID-shaped sha256
 *    (version 8). An identity is linked at most once, so ids never collide, and rebuilding the
 *    graph from the same events in the same order yields the same ids.
 * 4. The survivor of a merge is the profile created first: the smallest (createdAt, profileId),
 *    where createdAt is the `now` given to the resolve that created it. The oldest id, already on
 *    the most rows, stays. (A caller that passes the event's occurredAt instead of the clock
 *    makes survivors independent of processing time too.) Every merged profile points straight
 *    at the survivor (and so do the ids merged into it before), so canonical() is one hop;
 *    `aliases` lists every id whose canonical id changed, for one-hop alias rows.
 * 5. Limits stop bad merges; the event is still attributed, and the stop is reported in
 *    `blocked` with the identity, the reason and the profile that was NOT merged:
 *    - conflicting_external_id: a profile holds at most one EXTERNAL id. The anchor is the first
 *      identity (in the order of rule 3) that carries one: an EXTERNAL identity carries its own
 *      value, any other identity the EXTERNAL id of its profile. Identities carrying a different
 *      EXTERNAL id are not linked and their profiles not merged. Because EXTERNAL identities come
 *      first, an event's own externalUserId always wins over the profiles its email or phone
 *      point to.
 *    - shared_device: a device key counts the distinct profiles it was linked to (1 on first
 *      link; +k-1 when an event links it together with k profiles). Once the count reaches
 *      config.identity.maxProfilesPerDevice the device stops linking: it merges nothing and no
 *      new identity is linked through it. It is reported only when the event went to another
 *      profile than the device's own. An event whose only identities are such devices is
 *      attributed to the first device's profile.
 * 6. Attribution: the event's profile is the survivor of rule 4 (or the new profile). An event
 *    with no usable identity gets profileId null.
 * 7. Every merge is reported: { tenant, fromProfileId, toProfileId, reason, eventId, at }, where
 *    reason is `linked_by_<type>` for the type of the event's identity that belonged to the
 *    merged-away profile.
 * 8. Replays report the same. The graph changes before the consumer writes its rows, so after a
 *    crash the same events are resolved again; a second run would find everything linked and
 *    report nothing new, and the identity and merge rows would be lost. So a result with
 *    something to report (merges, new identities, blocked, aliases) is kept under
 *    (tenant, eventId) in the same transaction, and resolving that event again returns it
 *    unchanged without touching the graph. The consumer calls forget() once its rows are
 *    written and its offsets committed; kept results also expire after `replayTtlMs`
 *    (default one hour), so a replay later than that recomputes (and reports nothing new).
 *    A result with nothing to report is not kept: a replay recomputes it (its profileId is then
 *    the current canonical id of the same profile).
 *
 * Records (both stores):
 *   identity (tenant, type, value) -> { p: profile id when last written, n: device link count }
 *   profile  (tenant, id)          -> { c: createdAt ms, x: EXTERNAL id | null, m: merged into | null,
 *                                       a: ids merged into this one (only while it is canonical) }
 *   kept     (tenant, eventId)     -> the ResolveResult of rule 8
 */
import { createHash } from 'node:crypto'
import { CdpError } from '../errors.js'
import { IDENTITY_TYPES, type IdentityType, type NormalizedIdentity } from './normalize.js'

export interface EventRef {
  eventId: string
}

export interface ResolveInput {
  tenant: string
  identities: NormalizedIdentity[]
  event: EventRef
}

export type MergeReason = `linked_by_${Lowercase<IdentityType>}`
export type BlockReason = 'conflicting_external_id' | 'shared_device'

export interface MergeRecord {
  tenant: string
  fromProfileId: string
  toProfileId: string
  reason: MergeReason
  eventId: string
  /** ms since epoch */
  at: number
}

export interface BlockedIdentity {
  identity: NormalizedIdentity
  reason: BlockReason
  /** the profile this identity belongs to and that was not merged (null: a new identity) */
  profileId: string | null
}

/** a newly linked identity: one `identities` row */
export interface IdentityLink {
  tenant: string
  identity: NormalizedIdentity
  profileId: string
  eventId: string
  at: number
}

/** a profile id whose canonical id changed: one alias row */
export interface ProfileAlias {
  tenant: string
  profileId: string
  canonicalId: string
  at: number
}

export interface ResolveResult {
  /** the event's profile; null when the event has no usable identity */
  profileId: string | null
  merges: MergeRecord[]
  blocked: BlockedIdentity[]
  newIdentities: IdentityLink[]
  aliases: ProfileAlias[]
}

export interface IdentityGraph {
  /** resolve one event; see the rules above */
  resolve(tenant: string, identities: NormalizedIdentity[], event: EventRef, now: number): Promise<ResolveResult>
  /** resolve events in order, in one transaction / one script call; a later event sees the earlier ones */
  resolveMany(items: ResolveInput[], now: number): Promise<ResolveResult[]>
  /** the current id of a profile id (itself when never merged or unknown) */
  canonical(tenant: string, profileId: string): Promise<string>
  canonicalMany(tenant: string, profileIds: string[]): Promise<string[]>
  /** the current profile of an identity, if linked */
  lookup(tenant: string, identity: { type: IdentityType; value: string }): Promise<string | undefined>
  /** drop the kept results of these events (rule 8): call after their rows are written */
  forget(events: { tenant: string; eventId: string }[]): Promise<void>
  /**
   * Erasure (src/privacy), step 1: the person behind these identities: the canonical profile of
   * each linked identity and every id merged into it, sorted, without duplicates.
   */
  profilesOf(tenant: string, identities: { type: IdentityType; value: string }[]): Promise<string[]>
  /**
   * Erasure, step 2: forget the profiles (records, merged-id lists), every given identity whose
   * profile is one of them (an identity now resolving to someone else is kept), and the kept
   * results of the given events. Idempotent: erasing again removes nothing and counts zero.
   */
  erase(tenant: string, what: GraphErasureInput): Promise<GraphErasure>
  ping(): Promise<boolean>
  close(): Promise<void>
}

export interface GraphErasureInput {
  profileIds: string[]
  identities: { type: IdentityType; value: string }[]
  eventIds: string[]
}

/** what an erasure removed from the graph */
export interface GraphErasure {
  identities: number
  profiles: number
  keptResults: number
}

export interface GraphOptions {
  /** config.identity.maxProfilesPerDevice */
  maxProfilesPerDevice: number
}

// ---------- shared preparation (both stores, and the Redis script's input) ----------

const RANK: Readonly<Record<IdentityType, number>> = Object.fromEntries(IDENTITY_TYPES.map((t, i) => [t, i])) as Record<IdentityType, number>

export interface PreparedIdentity extends NormalizedIdentity {
  /** `${type}:${value}` */
  key: string
}

export function identityKey(i: { type: IdentityType; value: string }): string {
  return `${i.type}:${i.value}`
}

/** UUID-shaped (version 8, RFC 9562 "custom") sha256 of the tenant and the identity */
export function profileIdFor(tenant: string, i: { type: IdentityType; value: string }): string {
  const h = createHash('sha256').update(tenant).update('\0').update(i.type).update('\0').update(i.value).digest('hex')
  const variant = ((parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** dedupe by key (first raw wins) and sort by (type rank, value): rule 3's order */
export function prepareIdentities(identities: NormalizedIdentity[]): PreparedIdentity[] {
  const byKey = new Map<string, PreparedIdentity>()
  for (const i of identities) {
    if (RANK[i.type] === undefined) throw new CdpError('internal_error', `unknown identity type ${String(i.type)}`)
    const key = identityKey(i)
    if (!byKey.has(key)) byKey.set(key, { type: i.type, value: i.value, raw: i.raw, key })
  }
  return [...byKey.values()].sort((a, b) => RANK[a.type] - RANK[b.type] || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
}

/**
 * Whether the identity at `index` of a prepared list can name a new profile. A new profile is
 * named by the first ACCEPTED identity. The first identity is always accepted (it is the anchor
 * when it carries an EXTERNAL id, and carries none otherwise) unless it is a saturated device,
 * and devices sort last, so that happens only when every identity is a device. Hashing only these
 * saves most of the sha256 work per event.
 */
export function mayCreate(prepared: PreparedIdentity[], index: number): boolean {
  return index === 0 || prepared[0]?.type === 'DEVICE'
}

export function mergeReason(type: IdentityType): MergeReason {
  return `linked_by_${type.toLowerCase() as Lowercase<IdentityType>}`
}

/** (createdAt, id) order of rule 4 */
export function createdBefore(a: { c: number; id: string }, b: { c: number; id: string }): boolean {
  return a.c < b.c || (a.c === b.c && a.id < b.id)
}

// ---------- the rules over a synchronous transaction (LMDB and memory) ----------

export interface IdentityRecord {
  p: string
  n: number
}

export interface ProfileRecord {
  c: number
  x: string | null
  m: string | null
  a: string[]
}

/** the reads and writes of one transaction, keyed by tenant and identity key / profile id / event id */
export interface GraphTxn {
  getIdentity(tenant: string, key: string): IdentityRecord | undefined
  putIdentity(tenant: string, key: string, rec: IdentityRecord): void
  getProfile(tenant: string, id: string): ProfileRecord | undefined
  putProfile(tenant: string, id: string, rec: ProfileRecord): void
  getResolved(tenant: string, eventId: string): ResolveResult | undefined
  putResolved(tenant: string, eventId: string, result: ResolveResult): void
}

export function worthKeeping(r: ResolveResult): boolean {
  return r.merges.length > 0 || r.newIdentities.length > 0 || r.blocked.length > 0 || r.aliases.length > 0
}

/** rule 8 around the rules: a kept result is returned as it was; a new one is kept when it reports something */
export function resolveOrReplay(txn: GraphTxn, input: ResolveInput, now: number, opts: GraphOptions): ResolveResult {
  const kept = txn.getResolved(input.tenant, input.event.eventId)
  if (kept !== undefined) return kept
  const r = resolveInTxn(txn, input, now, opts)
  if (worthKeeping(r)) txn.putResolved(input.tenant, input.event.eventId, r)
  return r
}

const MAX_HOPS = 64

export function canonicalIn(
  txn: Pick<GraphTxn, 'getProfile'>, tenant: string, id: string,
): { id: string; rec: ProfileRecord } | undefined {
  let rec = txn.getProfile(tenant, id)
  for (let hops = 0; rec?.m != null; hops++) {
    if (hops > MAX_HOPS) throw new CdpError('internal_error', `identity graph: merge chain too long at ${id}`)
    id = rec.m
    rec = txn.getProfile(tenant, id)
  }
  return rec === undefined ? undefined : { id, rec }
}

interface Entry {
  identity: PreparedIdentity
  rec: IdentityRecord | undefined
  /** canonical profile of a known identity */
  profile: { id: string; rec: ProfileRecord } | undefined
  saturated: boolean
  conflict: boolean
}

function publicIdentity(i: PreparedIdentity): NormalizedIdentity {
  return { type: i.type, value: i.value, raw: i.raw }
}

export function resolveInTxn(
  txn: GraphTxn, input: ResolveInput, now: number, opts: GraphOptions,
): ResolveResult {
  const { tenant } = input
  const eventId = input.event.eventId
  const entries: Entry[] = prepareIdentities(input.identities).map((identity) => {
    const rec = txn.getIdentity(tenant, identity.key)
    if (rec === undefined) return { identity, rec, profile: undefined, saturated: false, conflict: false }
    const profile = canonicalIn(txn, tenant, rec.p)
    if (profile === undefined) throw new CdpError('internal_error', `identity graph: missing profile ${rec.p}`)
    return { identity, rec, profile, saturated: identity.type === 'DEVICE' && rec.n >= opts.maxProfilesPerDevice, conflict: false }
  })
  const extOf = (e: Entry): string | null => (e.identity.type === 'EXTERNAL' ? e.identity.value : (e.profile?.rec.x ?? null))

  let anchor: string | null = null
  for (const e of entries) {
    if (e.saturated) continue
    anchor = extOf(e)
    if (anchor !== null) break
  }
  const accepted: Entry[] = []
  for (const e of entries) {
    if (e.saturated) continue
    const x = extOf(e)
    if (anchor !== null && x !== null && x !== anchor) e.conflict = true
    else accepted.push(e)
  }

  const result: ResolveResult = { profileId: null, merges: [], blocked: [], newIdentities: [], aliases: [] }
  if (accepted.length === 0) {
    result.profileId = entries.find((e) => e.saturated)?.profile?.id ?? null
    return result
  }

  // distinct profiles of the accepted identities, with the type of the first identity that led there
  const profiles = new Map<string, { rec: ProfileRecord; via: IdentityType }>()
  for (const e of accepted) {
    if (e.profile !== undefined && !profiles.has(e.profile.id)) profiles.set(e.profile.id, { rec: e.profile.rec, via: e.identity.type })
  }
  let target: string
  let targetRec: ProfileRecord
  const first = accepted[0] as Entry
  const created = profiles.size === 0
  if (created) {
    target = profileIdFor(tenant, first.identity)
    targetRec = { c: now, x: null, m: null, a: [] }
  } else {
    let best: { id: string; c: number; rec: ProfileRecord } | undefined
    for (const [id, { rec }] of profiles) if (best === undefined || createdBefore({ id, c: rec.c }, best)) best = { id, c: rec.c, rec }
    const winner = best as { id: string; rec: ProfileRecord }
    target = winner.id
    targetRec = { ...winner.rec, a: [...winner.rec.a] }
  }

  for (const [id, { rec, via }] of profiles) {
    if (id === target) continue
    result.merges.push({ tenant, fromProfileId: id, toProfileId: target, reason: mergeReason(via), eventId, at: now })
    for (const moved of [id, ...rec.a]) result.aliases.push({ tenant, profileId: moved, canonicalId: target, at: now })
    for (const alias of rec.a) {
      const aliasRec = txn.getProfile(tenant, alias)
      if (aliasRec !== undefined) txn.putProfile(tenant, alias, { ...aliasRec, m: target })
    }
    txn.putProfile(tenant, id, { ...rec, m: target, a: [] })
    targetRec.a.push(id, ...rec.a)
  }
  // the target changes only when created, when it absorbed others, or when it gains an EXTERNAL id
  if (created || profiles.size > 1 || (anchor !== null && targetRec.x !== anchor)) {
    if (anchor !== null) targetRec.x = anchor
    txn.putProfile(tenant, target, targetRec)
  }

  for (const e of accepted) {
    const isDevice = e.identity.type === 'DEVICE'
    if (e.rec === undefined) {
      txn.putIdentity(tenant, e.identity.key, { p: target, n: isDevice ? Math.max(1, profiles.size) : 0 })
      result.newIdentities.push({ tenant, identity: publicIdentity(e.identity), profileId: target, eventId, at: now })
    } else {
      const n = isDevice ? e.rec.n + profiles.size - 1 : e.rec.n
      if (e.rec.p !== target || n !== e.rec.n) txn.putIdentity(tenant, e.identity.key, { p: target, n })
    }
  }

  for (const e of entries) {
    if (e.conflict) {
      result.blocked.push({ identity: publicIdentity(e.identity), reason: 'conflicting_external_id', profileId: e.profile?.id ?? null })
    } else if (e.saturated && e.profile !== undefined && e.profile.id !== target && !profiles.has(e.profile.id)) {
      result.blocked.push({ identity: publicIdentity(e.identity), reason: 'shared_device', profileId: e.profile.id })
    }
  }
  result.profileId = target
  return result
}

// ---------- erasure over a synchronous transaction (LMDB and memory) ----------

export interface EraseTxn extends Pick<GraphTxn, 'getIdentity' | 'getProfile'> {
  removeIdentity(tenant: string, key: string): void
  removeProfile(tenant: string, id: string): void
  /** true when a kept result was there */
  removeResolved(tenant: string, eventId: string): boolean
}

export function profilesOfIn(txn: Pick<GraphTxn, 'getIdentity' | 'getProfile'>, tenant: string, identities: { type: IdentityType; value: string }[]): string[] {
  const out = new Set<string>()
  for (const i of identities) {
    const rec = txn.getIdentity(tenant, identityKey(i))
    if (rec === undefined) continue
    const c = canonicalIn(txn, tenant, rec.p)
    if (c === undefined) { out.add(rec.p); continue }
    out.add(c.id)
    for (const a of c.rec.a) out.add(a)
  }
  return [...out].sort()
}

export function eraseIn(txn: EraseTxn, tenant: string, what: GraphErasureInput): GraphErasure {
  const gone = new Set(what.profileIds)
  const out: GraphErasure = { identities: 0, profiles: 0, keptResults: 0 }
  for (const i of what.identities) {
    const key = identityKey(i)
    const rec = txn.getIdentity(tenant, key)
    if (rec === undefined) continue
    const owner = canonicalIn(txn, tenant, rec.p)?.id ?? rec.p
    if (!gone.has(rec.p) && !gone.has(owner)) continue
    txn.removeIdentity(tenant, key)
    out.identities++
  }
  for (const id of gone) {
    if (txn.getProfile(tenant, id) === undefined) continue
    txn.removeProfile(tenant, id)
    out.profiles++
  }
  for (const e of what.eventIds) if (txn.removeResolved(tenant, e)) out.keptResults++
  return out
}

// ---------- in-memory graph: the reference implementation ----------

export interface MemoryGraphData {
  identities: Map<string, IdentityRecord>
  profiles: Map<string, ProfileRecord>
  resolved: Map<string, { result: ResolveResult; keptAt: number }>
}

export function emptyMemoryGraph(): MemoryGraphData {
  return { identities: new Map(), profiles: new Map(), resolved: new Map() }
}

export function createMemoryIdentityGraph(
  opts: GraphOptions & { replayTtlMs?: number }, data: MemoryGraphData = emptyMemoryGraph(),
): IdentityGraph {
  const ttl = opts.replayTtlMs ?? 3600_000
  const k = (tenant: string, key: string): string => `${tenant}\u0000${key}`
  const view: GraphTxn = {
    getIdentity: (t, key) => data.identities.get(k(t, key)),
    putIdentity: (t, key, rec) => void data.identities.set(k(t, key), rec),
    getProfile: (t, id) => data.profiles.get(k(t, id)),
    putProfile: (t, id, rec) => void data.profiles.set(k(t, id), rec),
    getResolved: (t, id) => {
      const kept = data.resolved.get(k(t, id))
      if (kept === undefined || Date.now() - kept.keptAt > ttl) return undefined
      return structuredClone(kept.result)
    },
    putResolved: (t, id, r) => void data.resolved.set(k(t, id), { result: structuredClone(r), keptAt: Date.now() }),
  }
  let closed = false
  const guard = (): void => {
    if (closed) throw new CdpError('state_store_unavailable', 'memory identity graph is closed')
  }
  const graph: IdentityGraph = {
    async resolve(tenant, identities, event, now) {
      const [r] = await graph.resolveMany([{ tenant, identities, event }], now)
      return r as ResolveResult
    },
    async resolveMany(items, now) {
      guard()
      return items.map((item) => resolveOrReplay(view, item, now, opts))
    },
    async canonical(tenant, profileId) {
      guard()
      return canonicalIn(view, tenant, profileId)?.id ?? profileId
    },
    async canonicalMany(tenant, ids) {
      guard()
      return ids.map((id) => canonicalIn(view, tenant, id)?.id ?? id)
    },
    async lookup(tenant, identity) {
      guard()
      const rec = view.getIdentity(tenant, identityKey(identity))
      return rec === undefined ? undefined : (canonicalIn(view, tenant, rec.p)?.id ?? rec.p)
    },
    async forget(events) {
      guard()
      for (const e of events) data.resolved.delete(k(e.tenant, e.eventId))
    },
    async profilesOf(tenant, identities) {
      guard()
      return profilesOfIn(view, tenant, identities)
    },
    async erase(tenant, what) {
      guard()
      return eraseIn({
        ...view,
        removeIdentity: (t, key) => void data.identities.delete(k(t, key)),
        removeProfile: (t, id) => void data.profiles.delete(k(t, id)),
        removeResolved: (t, id) => data.resolved.delete(k(t, id)),
      }, tenant, what)
    },
    async ping() {
      return !closed
    },
    async close() {
      closed = true
    },
  }
  return graph
}
