/**
 * Erasure of a person (GDPR art. 17, CCPA), end to end. docs/PRIVACY.md is the reader's guide.
 *
 * A request (`request`) is taken anywhere (API, `cdp erase`): the identity is normalized as
 * events are, turned into its graph form (pseudonymized for tenants in that mode), suppressed at
 * once, and stored `pending` in the privacy store. The process that owns ClickHouse (role all or
 * consumer) runs it (`ErasureWorker`); an API-only process only stores requests.
 *
 * The run, for one tenant:
 *   1. find the person: profiles of the identity in the graph and in ClickHouse (identities +
 *      profile_canonical), every identity linked to them, again until nothing new (merged
 *      profiles are one person); their events (by profile or by identity) and dead letters
 *      (by key, or by the identities inside their value);
 *   2. suppress every identity found (keyed hashes), so nothing new about them is stored;
 *   3. the identity graph forgets the profiles, their identities and kept results;
 *   4. dedup records of their facts are marked erased (value-free: tuple, fingerprint, event id),
 *      so a retry or a replayed record is recognised and skipped, never stored or re-asserted;
 *      claims hold no identity or payload and are kept, so a client retry answers `duplicate`;
 *   5. a tombstone (null value) per tuple key on the events topic, on the key's murmur2
 *      partition: compaction then drops the records, and replays never see them again;
 *   6. ClickHouse: events, identities, merges, aliases and dead letters deleted, waited for.
 * Each step is idempotent, so a run taken over after a crash simply runs again.
 */
import { randomBytes } from 'node:crypto'
import type { Config } from '../config/index.js'
import { CdpError, isCdpError, type ErrorDetail } from '../errors.js'
import type { RawIdentity } from '../avro/event.js'
import { FactKey, keyString } from '../avro/key.js'
import { IdentityNormalizer, normalizeIdentities, type IdentityField, type IdentityType } from '../identity/normalize.js'
import type { IdentityGraph } from '../identity/graph.js'
import type { DeadLetterRef, PersonIdentity, PersonRows, RowIdentityType } from '../clickhouse/erasure.js'
import type { DedupStore } from '../state/types.js'
import type { ErasureReceipt, ErasureRecord, PrivacyStore } from '../state/privacy-store.js'
import type { Logger } from '../observability/logger.js'
import type { Pseudonymizer } from './keyed-hash.js'
import type { SuppressionCheck } from './suppression.js'

const ROW_TYPE: Record<IdentityType, RowIdentityType> = { EXTERNAL: 'external', EMAIL: 'email', PHONE: 'phone', DEVICE: 'device' }
const GRAPH_TYPE: Record<RowIdentityType, IdentityType> = { external: 'EXTERNAL', email: 'EMAIL', phone: 'PHONE', device: 'DEVICE' }
const FIELDS: readonly IdentityField[] = ['email', 'phone', 'externalUserId', 'deviceKey']

export function newErasureId(): string {
  return `era_${randomBytes(13).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, '0')}`
}

/** what GET /v1/cdp/erasures/{id} and `cdp erase` show: never the identity value */
export interface ErasureView {
  erasure_id: string
  status: ErasureRecord['status']
  step?: string
  reason?: string
  requested_at: string
  finished_at?: string
  receipt?: ErasureReceipt
}

export function erasureView(r: ErasureRecord): ErasureView {
  return {
    erasure_id: r.id, status: r.status, requested_at: r.requestedAt,
    ...(r.step === undefined ? {} : { step: r.step }),
    ...(r.reason === undefined ? {} : { reason: r.reason }),
    ...(r.finishedAt === undefined ? {} : { finished_at: r.finishedAt }),
    ...(r.receipt === undefined ? {} : { receipt: r.receipt }),
  }
}

export interface ErasureRequests {
  /** validates and stores a pending request; the identity is suppressed from now on */
  request(tenant: string, identity: unknown, requestedBy: string): Promise<ErasureRecord>
  get(tenant: string, id: string): Promise<ErasureRecord | undefined>
}

export function erasureRequests(
  config: Readonly<Pick<Config, 'identity'>>, store: PrivacyStore, suppression: SuppressionCheck, pseudonymizer: Pseudonymizer, now: () => number = Date.now,
): ErasureRequests {
  const normalizer = new IdentityNormalizer(config.identity)
  return {
    async request(tenant, body, requestedBy) {
      const { type, value } = parseIdentity(normalizer, body)
      const stored = pseudonymizer.identity(tenant, type, value)
      const hash = await suppression.hash(tenant, { type, value: stored })
      const at = new Date(now()).toISOString()
      const rec: ErasureRecord = {
        id: newErasureId(), tenant, identity: { type, value: stored, hash }, status: 'pending', requestedBy, requestedAt: at,
      }
      // suppressed before the request is even stored: from this answer on, nothing new about them is kept
      await store.suppress([{ tenant, hash, type, erasureId: rec.id, at }])
      await store.createErasure(rec)
      return rec
    },
    async get(tenant, id) {
      const r = await store.getErasure(id)
      return r === undefined || r.tenant !== tenant ? undefined : r
    },
  }
}

function parseIdentity(normalizer: IdentityNormalizer, body: unknown): { type: IdentityType; value: string } {
  const bad = (details: ErrorDetail[]): CdpError => new CdpError('validation_failed', details.map((d) => d.message).join('; '), { details })
  const identity = (body as { identity?: unknown } | null)?.identity
  if (identity === null || typeof identity !== 'object' || Array.isArray(identity)) {
    throw bad([{ pointer: '/identity', code: 'required', message: 'identity must be an object with one of email, phone, externalUserId, deviceKey' }])
  }
  const given = Object.entries(identity as Record<string, unknown>)
  const unknown = given.filter(([k]) => !FIELDS.includes(k as IdentityField))
  if (unknown.length > 0 || given.length !== 1) {
    throw bad([{ pointer: '/identity', code: 'one_identity', message: 'identity must hold exactly one of email, phone, externalUserId, deviceKey' }])
  }
  const [field, raw] = given[0] as [IdentityField, unknown]
  if (typeof raw !== 'string') throw bad([{ pointer: `/identity/${field}`, code: 'type', message: `identity.${field} must be a string` }])
  const r = normalizer.field(field, raw)
  if (r === undefined || 'dropped' in r) {
    throw bad([{ pointer: `/identity/${field}`, code: 'unusable', message: `identity.${field} is empty or a placeholder value no profile is keyed on` }])
  }
  if ('error' in r) throw bad([{ pointer: `/identity/${field}`, code: r.error, message: `identity.${field} is not valid (${r.error})` }])
  return { type: r.identity.type, value: r.identity.value }
}

// ---------- the run ----------

export interface ErasureRunDeps {
  config: Readonly<Pick<Config, 'identity'>>
  store: PrivacyStore
  graph: Pick<IdentityGraph, 'profilesOf' | 'erase'>
  dedup: Pick<DedupStore, 'get' | 'markErased'>
  rows: PersonRows
  suppression: SuppressionCheck
  pseudonymizer: Pseudonymizer
  /** the identity inside a dead letter's value (undefined: not a decodable event) */
  identityOfValue(value: Buffer): Promise<RawIdentity | undefined>
  /** null-value records for these keys on the events topic, each on its murmur2 partition; resolves once acknowledged */
  tombstones(keys: Buffer[]): Promise<void>
  log: Logger
  now?: () => number
}

const MAX_ROUNDS = 8

export async function runErasure(deps: ErasureRunDeps, rec: ErasureRecord, progress: (step: string) => Promise<void>): Promise<ErasureReceipt> {
  const { tenant } = rec
  const value = rec.identity.value
  if (value === undefined) throw new CdpError('internal_error', `erasure ${rec.id} lost its identity before it ran`)

  await progress('finding the person')
  const ids = new Map<string, PersonIdentity>()
  const add = (i: PersonIdentity): boolean => { const k = `${i.type}:${i.value}`; if (ids.has(k)) return false; ids.set(k, i); return true }
  add({ type: ROW_TYPE[rec.identity.type], value })
  const profiles = new Set<string>()
  // merged profiles are one person: follow identities to profiles and back until nothing is new
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const list = [...ids.values()]
    const found = [
      ...await deps.graph.profilesOf(tenant, list.map((i) => ({ type: GRAPH_TYPE[i.type], value: i.value }))),
      ...await deps.rows.profilesOf(tenant, list),
    ]
    let grew = false
    for (const p of found) if (!profiles.has(p)) { profiles.add(p); grew = true }
    for (const i of await deps.rows.identitiesOf(tenant, [...profiles])) if (add(i)) grew = true
    if (!grew) break
  }
  const profileIds = [...profiles].sort()
  const identities = [...ids.values()]
  const facts = await deps.rows.factsOf(tenant, profileIds, identities)
  const tupleKeys = facts.tuples.map((t) => keyString({ tenant, source: t.source, externalEventId: t.externalEventId }))
  const deadLetters = await theirDeadLetters(deps, tenant, new Set(tupleKeys), new Set(ids.keys()))

  await progress('suppressing their identities')
  const at = new Date((deps.now ?? Date.now)()).toISOString()
  const suppressions = await Promise.all(identities.map(async (i) => ({
    tenant, type: GRAPH_TYPE[i.type], erasureId: rec.id, at, hash: await deps.suppression.hash(tenant, { type: GRAPH_TYPE[i.type], value: i.value }),
  })))
  await deps.store.suppress(suppressions)

  await progress('identity graph')
  const graph = await deps.graph.erase(tenant, {
    profileIds, identities: identities.map((i) => ({ type: GRAPH_TYPE[i.type], value: i.value })), eventIds: facts.eventIds,
  })

  await progress('dedup records')
  const dedupMarkedErased = await deps.dedup.markErased(tupleKeys)

  await progress('topic tombstones')
  // a dead letter's key gets one only when no live fact sits under it: a tombstone there would
  // let compaction drop someone else's fact (the re-assertion after the dead letter keeps it)
  const letterKeys: string[] = []
  for (const d of deadLetters) {
    if (tupleKeys.includes(d.key) || letterKeys.includes(d.key)) continue
    const read = FactKey.read(Buffer.from(d.key, 'utf8'))
    if (!read.ok || read.key.tenant !== tenant) continue
    const fact = await deps.dedup.get(read.key.text)
    if (fact === undefined || fact.erased === true) letterKeys.push(read.key.text)
  }
  const keys = [...tupleKeys, ...letterKeys]
  if (keys.length > 0) await deps.tombstones(keys.map((k) => Buffer.from(k, 'utf8')))

  await progress('ClickHouse')
  const clickhouse = await deps.rows.erase(tenant, { profileIds, identities, eventIds: facts.eventIds, deadLetters })

  return {
    profileIds, clickhouse, graph, dedupMarkedErased, claimsScrubbed: 0, tombstones: keys.length, suppressed: suppressions.length,
  }
}

async function theirDeadLetters(deps: ErasureRunDeps, tenant: string, tupleKeys: Set<string>, idKeys: Set<string>): Promise<DeadLetterRef[]> {
  const out: DeadLetterRef[] = []
  for (const d of await deps.rows.deadLetters(tenant)) {
    if (tupleKeys.has(d.key)) { out.push(d); continue }
    if (d.valueBase64 === '') continue
    const raw = await deps.identityOfValue(Buffer.from(d.valueBase64, 'base64')).catch(() => undefined)
    if (raw === undefined) continue
    const theirs = normalizeIdentities(raw, deps.config.identity).identities
      .some((i) => idKeys.has(`${ROW_TYPE[i.type]}:${deps.pseudonymizer.identity(tenant, i.type, i.value)}`))
    if (theirs) out.push(d)
  }
  return out
}

// ---------- the worker ----------

export interface ErasureWorkerOptions {
  pollMs: number
  staleMs: number
  /** names this process in the record (`owner`) */
  owner?: string
}

/**
 * Runs the stored requests in the process that owns ClickHouse, one at a time. Polls the store
 * (requests are rare; a poll is one read), takes a request atomically, reports each step, and
 * ends it `completed` with its receipt or `failed` with the reason. Either way the identity value
 * leaves the record; the suppression stays.
 */
export class ErasureWorker {
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false
  readonly #owner: string

  constructor(private readonly deps: ErasureRunDeps, private readonly opts: ErasureWorkerOptions) {
    this.#owner = opts.owner ?? `pid-${process.pid}-${randomBytes(3).toString('hex')}`
  }

  start(): void {
    if (this.#timer !== undefined || this.#stopped) return
    const tick = (): void => {
      this.#timer = setTimeout(() => {
        this.#running = this.runOnce().then(() => undefined, (err: unknown) => {
          this.deps.log.error({ err: err instanceof Error ? err.message : String(err) }, 'erasure worker: poll failed')
        }).finally(() => { this.#running = undefined; if (!this.#stopped) tick() })
      }, this.opts.pollMs)
    }
    tick()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }

  /** takes and runs at most one request; returns it as it ended */
  async runOnce(): Promise<ErasureRecord | undefined> {
    const now = this.deps.now ?? Date.now
    let rec = await this.deps.store.takeErasure(this.#owner, now(), this.opts.staleMs)
    if (rec === undefined) return undefined
    const log = this.deps.log.child({ erasureId: rec.id, tenant: rec.tenant })
    log.info('erasure started')
    const progress = async (step: string): Promise<void> => {
      rec = { ...rec!, step, heartbeatAt: now() }
      await this.deps.store.putErasure(rec)
    }
    let end: ErasureRecord
    try {
      const receipt = await runErasure(this.deps, rec, progress)
      end = { ...rec, status: 'completed', receipt, finishedAt: new Date(now()).toISOString() }
      log.info({ profiles: receipt.profileIds.length, clickhouse: receipt.clickhouse, tombstones: receipt.tombstones }, 'erasure completed')
    } catch (err) {
      const reason = isCdpError(err) ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err)
      end = { ...rec, status: 'failed', reason, finishedAt: new Date(now()).toISOString() }
      log.error({ reason }, 'erasure failed')
    }
    const { value: _dropped, ...identity } = end.identity
    end = { ...end, identity, heartbeatAt: now() }
    delete end.step
    await this.deps.store.putErasure(end)
    return end
  }
}
