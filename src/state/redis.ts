/**
 * Shared state stores on Redis, for many API and consumer processes. Every batch is decided by
 * one Lua script per hash-tag group (EVALSHA), so it is atomic with respect to every other
 * process; the scripts are ports of the pure rules in rules.ts. All keys live under `<prefix>:`:
 *
 *   <prefix>:c{<g>}<b>            hash  claims: field = the rest of the fact's digest, value = a
 *                                       compact claim record (compact.ts)
 *   <prefix>:d{<g>}<b>            hash  dedup facts, the same way (erasure flips the record's flag)
 *   <prefix>:dedup:<dedup key>    hash  r (offset): a re-assertion mark (rare, only after conflicts)
 *   <prefix>:apikeys              hash  key id -> ApiKeyRecord as JSON
 *
 * Buckets: a fact's 128-bit key digest picks bucket b (its first `bucketBits` bits, base 36), and
 * the rest of the digest is the field. Many facts per hash keep Redis's compact listpack
 * encoding (up to hash-max-listpack-entries = 128 fields of at most 64 bytes each, the defaults),
 * which costs a few bytes per field instead of the ~50+ bytes of a top-level key. The default 24
 * bits (16.8M buckets) suits 0.5-2 billion facts per store (about 30-120 per bucket); fewer facts
 * leave buckets sparse (still smaller than a key per fact), more turn full buckets into regular
 * hash tables (correct, larger): raise hash-max-listpack-entries then. The bucket count is part of
 * the layout: never change it for a store that holds facts. No per-fact TTL is needed: claims and
 * dedup facts are permanent.
 *
 * Redis Cluster: `{<g>}` is the hash tag, the digest's first byte in hex, so a fact's claim and
 * dedup buckets share one slot and there are 256 slot groups. With a Cluster client a batch is
 * split by tag and each group runs as one script (whose keys all share the slot); with a single
 * Redis one script takes the whole batch (chunks of CHUNK items).
 *
 * The layout before this one kept one hash per fact (`<prefix>:claim:<dedup key>`, s/e/f/t, and
 * `<prefix>:dedup:<dedup key>`, e/f/p/o/x). Dedup is permanent, so those facts must still count:
 * with a single Redis the scripts look a fact up there when its bucket field is missing, and
 * decide and write such a record in its old layout (legacy branch below). Cluster stores never
 * had that layout (the old scripts could not run there), so a Cluster client skips the lookup.
 */
import type { Cluster, Redis } from 'ioredis'
import { CdpError } from '../errors.js'
import { closeRedisClient, createRedisClient, pingRedis, redisCall, RedisScript, type RedisClientOptions } from './redis-client.js'
import { claimEventIdOf, DIGEST_BYTES, decodeClaim, decodeFact, encodePosition, factDigest, scriptEventItem, scriptItem } from './compact.js'
import type {
  ApiKeyRecord, ClaimInfo, ClaimOutcome, ClaimRequest, ClaimStore, DedupOutcome, DedupStore, FactRef, KeyStore, StateStores,
} from './types.js'

/** what the stores talk to: one Redis, or a Redis Cluster */
export type RedisConnection = Redis | Cluster

/** items per script call: bounds how long one script holds Redis; chunks run in order */
const CHUNK = 1000

export const DEFAULT_BUCKET_BITS = 24

/** where a fact's records live: bucket key suffix (hash tag + bucket) and the field in it */
export interface FactSlot {
  /** the hash tag, `{<first digest byte in hex>}` */
  tag: string
  /** `{<g>}<b>`: appended to `<prefix>:c` / `<prefix>:d` */
  suffix: string
  field: Buffer
}

export function factSlot(key: string, bucketBits: number = DEFAULT_BUCKET_BITS): FactSlot {
  const d = factDigest(key)
  const tag = `{${d.subarray(0, 1).toString('hex')}}`
  const bucket = d.readUInt32BE(0) >>> (32 - bucketBits)
  return { tag, suffix: `${tag}${bucket.toString(36)}`, field: d.subarray(bucketBits >> 3) }
}

// Lua helpers over the compact records (compact.ts): field lengths from their tag byte, a claim's
// parts, a fact's parts, and the 6-byte claim time
const HELPERS = `
local function flen(v, i)
  local tag = string.byte(v, i)
  if tag == 1 then return 18 elseif tag == 2 then return 25 end
  return 3 + string.byte(v, i + 1) * 256 + string.byte(v, i + 2)
end
local function claim_fp(v) return string.sub(v, 8, 7 + flen(v, 8)) end
local function claim_eid(v) return string.sub(v, 8 + flen(v, 8)) end
local function claim_t(v)
  local t = 0
  for j = 2, 7 do t = t * 256 + string.byte(v, j) end
  return t
end
local function six(n)
  local s = {}
  for j = 5, 0, -1 do s[#s + 1] = string.char(math.floor(n / 256 ^ j) % 256) end
  return table.concat(s)
end
local function fact_parts(v)
  local a = 2 + flen(v, 2)
  local b = a + flen(v, a)
  return string.sub(v, 2, a - 1), string.sub(v, a, b - 1), string.sub(v, b)
end
-- a length-prefixed string (\`<bytes>:<string>\`) at i of s: the string and where the next starts
local function lp(s, i)
  local c = string.find(s, ':', i, true)
  local len = tonumber(string.sub(s, i, c - 1))
  return string.sub(s, c + 1, c + len), c + len + 1
end
-- ARGV[1]: '' or, to look facts up in the per-fact layout too, that layout's key prefix
-- (\`<prefix>:claim:\` or \`<prefix>:dedup:\`); those keys are not in KEYS: only a single Redis
-- holds them, where undeclared keys are allowed (a Cluster client passes '')
local function plen(v, i) return 2 + string.byte(v, i + 1) end
-- the start of one item in the batch argument (scriptItem): bucket field (fl bytes), fingerprint,
-- event id; and where the rest of the item (or the next) starts
local function item(blob, ix, fl)
  local f = string.sub(blob, ix, ix + fl - 1)
  ix = ix + fl
  local fp = string.sub(blob, ix, ix + flen(blob, ix) - 1)
  ix = ix + #fp
  local eid = string.sub(blob, ix, ix + flen(blob, ix) - 1)
  return f, fp, eid, ix + #eid
end
local lpre = ARGV[1]
local legacy = lpre ~= ''
local n = #KEYS
`

// ARGV[2] is 'server' (the default, see claimNow) or the caller's ms. On the server's clock every
// process judges a lease alike: a process whose own clock runs ahead by more than the lease
// would otherwise see every live claim as abandoned and take it over (a second 'accepted').
// ARGV[4] is the bucket field's length. ARGV[5]: per item field + fingerprint + event id, encoded
// (compact.ts scriptItem), all items in one argument; ARGV[6] (legacy): per item the tuple key,
// fingerprint and event id as they are, length-prefixed. Reply per item:
// code, kind ('v': data is the stored record, 'r': data is an old-layout event id, '': the
// caller's event id), data.
const CLAIM = new RedisScript('claim', HELPERS + `
local now
if ARGV[2] == 'server' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local at = six(now)
local lease = tonumber(ARGV[3])
local fl = tonumber(ARGV[4])
local blob, raw = ARGV[5], ARGV[6]
local ix, rat = 1, 1
local out = {}
local function put(code, kind, data) out[#out + 1] = code; out[#out + 1] = kind; out[#out + 1] = data end
for i = 1, n do
  local k = KEYS[i]
  local f, fp, eid
  f, fp, eid, ix = item(blob, ix, fl)
  local rkey, rfp, reid
  if legacy then
    rkey, rat = lp(raw, rat)
    rfp, rat = lp(raw, rat)
    reid, rat = lp(raw, rat)
  end
  local v = redis.call('HGET', k, f)
  local old = nil
  local lk
  if not v and legacy then
    lk = lpre .. rkey
    old = redis.call('HMGET', lk, 's', 'e', 'f', 't')
    if not old[1] then old = nil end
  end
  if old then
    if old[3] ~= rfp then put('conflict', 'r', old[2])
    elseif old[1] == 'c' then put('duplicate', 'r', old[2])
    elseif old[2] == reid then put('claimed', 'r', old[2])
    elseif tonumber(old[4]) + lease < now then
      redis.call('HSET', lk, 't', string.format('%.0f', now))
      put('takeover', 'r', old[2])
    else put('in_flight', 'r', old[2]) end
  elseif not v then
    redis.call('HSET', k, f, 'p' .. at .. fp .. eid)
    put('claimed', '', '')
  elseif claim_fp(v) ~= fp then put('conflict', 'v', v)
  elseif string.sub(v, 1, 1) == 'c' then put('duplicate', 'v', v)
  elseif claim_eid(v) == eid then put('claimed', 'v', v)
  elseif claim_t(v) + lease < now then
    redis.call('HSET', k, f, 'p' .. at .. string.sub(v, 8))
    put('takeover', 'v', v)
  else put('in_flight', 'v', v) end
end
return out
`)

// commit, release, abandon: only a claim held by the event id changes (ARGV[2] names the change,
// ARGV[3] is the field length); ARGV[4]: per item field + encoded event id, in one argument;
// ARGV[5] (legacy): per item the tuple key and event id as they are, length-prefixed
const CLAIM_CHANGE = new RedisScript('claim change', HELPERS + `
local op = ARGV[2]
local fl = tonumber(ARGV[3])
local blob, raw = ARGV[4], ARGV[5]
local ix, rat = 1, 1
for i = 1, n do
  local k = KEYS[i]
  local f = string.sub(blob, ix, ix + fl - 1)
  ix = ix + fl
  local eid = string.sub(blob, ix, ix + flen(blob, ix) - 1)
  ix = ix + #eid
  local rkey, reid
  if legacy then
    rkey, rat = lp(raw, rat)
    reid, rat = lp(raw, rat)
  end
  local v = redis.call('HGET', k, f)
  if v then
    if string.sub(v, 1, 1) == 'p' and claim_eid(v) == eid then
      if op == 'commit' then redis.call('HSET', k, f, 'c' .. string.sub(v, 2))
      elseif op == 'release' then redis.call('HDEL', k, f)
      else redis.call('HSET', k, f, 'p' .. six(0) .. string.sub(v, 8)) end
    end
  elseif legacy then
    local lk = lpre .. rkey
    local cur = redis.call('HMGET', lk, 's', 'e')
    if cur[1] == 'p' and cur[2] == reid then
      if op == 'commit' then redis.call('HSET', lk, 's', 'c')
      elseif op == 'release' then redis.call('DEL', lk)
      else redis.call('HSET', lk, 't', '0') end
    end
  end
end
return n
`)

// per item: field, (legacy) the tuple key
const ERASE = new RedisScript('dedup erase', HELPERS + `
local marked = 0
local stride = 1
if legacy then stride = 2 end
for i = 1, n do
  local k = KEYS[i]
  local b = 1 + (i - 1) * stride
  local f = ARGV[b + 1]
  local v = redis.call('HGET', k, f)
  if v then
    redis.call('HSET', k, f, 'x' .. string.sub(v, 2)); marked = marked + 1
  elseif legacy and redis.call('HEXISTS', lpre .. ARGV[b + 2], 'e') == 1 then
    redis.call('HSET', lpre .. ARGV[b + 2], 'x', '1'); marked = marked + 1
  end
end
return marked
`)

// ARGV[2] is the field length; ARGV[3]: per item field + fingerprint + event id + position,
// encoded, in one argument; ARGV[4] (legacy): per item the tuple key, fingerprint, partition and
// offset as they are, length-prefixed.
// Reply per item: code, kind ('v': data1 is the stored record, 'r': data1..4 are the old
// layout's e, f, p, o, '': nothing stored before), data1..4
const DEDUP = new RedisScript('dedup', HELPERS + `
local fl = tonumber(ARGV[2])
local blob, raw = ARGV[3], ARGV[4]
local ix, rat = 1, 1
local out = {}
local function put(code, kind, a, b, c, d)
  out[#out + 1] = code; out[#out + 1] = kind
  out[#out + 1] = a; out[#out + 1] = b; out[#out + 1] = c; out[#out + 1] = d
end
for i = 1, n do
  local k = KEYS[i]
  local f, fp, eid
  f, fp, eid, ix = item(blob, ix, fl)
  local pos = string.sub(blob, ix, ix + plen(blob, ix) - 1)
  ix = ix + #pos
  local rkey, rfp, part, off
  if legacy then
    rkey, rat = lp(raw, rat)
    rfp, rat = lp(raw, rat)
    part, rat = lp(raw, rat)
    off, rat = lp(raw, rat)
  end
  local v = redis.call('HGET', k, f)
  local old = nil
  if not v and legacy then
    old = redis.call('HMGET', lpre .. rkey, 'e', 'f', 'p', 'o', 'x')
    if not old[1] then old = nil end
  end
  if old then
    local code
    if old[5] == '1' then code = 'erased'
    elseif old[3] == part and old[4] == off then code = 'redelivered'
    elseif old[2] == rfp then code = 'repeat'
    else code = 'conflict' end
    put(code, 'r', old[1], old[2], old[3], old[4])
  elseif not v then
    redis.call('HSET', k, f, 'f' .. fp .. eid .. pos)
    put('first', '', '', '', '', '')
  else
    local vfp, veid, vpos = fact_parts(v)
    local code
    if string.sub(v, 1, 1) == 'x' then code = 'erased'
    elseif vpos == pos then code = 'redelivered'
    elseif vfp == fp then code = 'repeat'
    else code = 'conflict' end
    put(code, 'v', v, '', '', '')
  end
end
return out
`)

/** `<bytes>:<string>` per value, read by the scripts' lp() */
function lengthPrefixed(...values: string[]): string {
  return values.map((v) => `${Buffer.byteLength(v)}:${v}`).join('')
}

function buffers(reply: unknown, what: string): Buffer[] {
  if (!Array.isArray(reply)) throw new CdpError('internal_error', `redis ${what}: unexpected reply`)
  return reply as Buffer[]
}

/**
 * Whose clock judges claim leases: `server` (Redis TIME, inside the script: one clock for every
 * process) or `caller` (the `now` each call passes; for the shared contract suite, which steps
 * time by hand).
 */
export type ClaimClock = 'server' | 'caller'

/** The bucket keys of the facts, and how batches are cut into script calls. */
class Layout {
  constructor(
    readonly client: RedisConnection,
    readonly prefix: string,
    readonly bucketBits: number,
    /** look facts up in the layout before buckets too (a single Redis that may hold them) */
    readonly legacy: boolean,
  ) {}

  slot(key: string): FactSlot { return factSlot(key, this.bucketBits) }

  /** bytes of a bucket field (the digest after the bucket's whole bytes) */
  get fieldLength(): number { return DIGEST_BYTES - (this.bucketBits >> 3) }

  claimKey(s: FactSlot): string { return `${this.prefix}:c${s.suffix}` }
  dedupKey(s: FactSlot): string { return `${this.prefix}:d${s.suffix}` }
  legacyClaimKey(key: string): string { return `${this.prefix}:claim:${key}` }
  legacyDedupKey(key: string): string { return `${this.prefix}:dedup:${key}` }

  /**
   * The script calls for a batch, in order, each with the indexes of its items: with a Cluster
   * client one group per hash tag (all its keys in one slot), else the batch in chunks. Items of
   * one key share a group and keep their order, so "decided in order" holds.
   */
  groups(slots: FactSlot[]): number[][] {
    const all = slots.map((_, i) => i)
    if (!this.client.isCluster) {
      const out: number[][] = []
      for (let i = 0; i < all.length; i += CHUNK) out.push(all.slice(i, i + CHUNK))
      return out
    }
    const byTag = new Map<string, number[]>()
    slots.forEach(({ tag }, i) => {
      const g = byTag.get(tag)
      if (g === undefined) byTag.set(tag, [i])
      else g.push(i)
    })
    return [...byTag.values()].flatMap((g) => {
      const out: number[][] = []
      for (let i = 0; i < g.length; i += CHUNK) out.push(g.slice(i, i + CHUNK))
      return out
    })
  }

  /** the scripts' ARGV[1]: the per-fact layout's key prefix when they look there, else '' */
  legacyPrefix(kind: 'claim' | 'dedup'): string {
    return this.legacy ? `${this.prefix}:${kind}:` : ''
  }
}

class RedisClaimStore implements ClaimStore {
  constructor(private readonly l: Layout, private readonly clock: ClaimClock) {}

  /** the script's clock argument: the marker that makes it read Redis TIME, or the caller's ms */
  private claimNow(now: number): string | number {
    return this.clock === 'server' ? 'server' : now
  }

  async claimMany(reqs: ClaimRequest[], now: number, leaseMs: number): Promise<ClaimOutcome[]> {
    const out: ClaimOutcome[] = new Array<ClaimOutcome>(reqs.length)
    const names = reqs.map((r) => r.key)
    const slots = names.map((k) => this.l.slot(k))
    for (const group of this.l.groups(slots)) {
      const chunk = group.map((i) => reqs[i]!)
      const keys = group.map((i) => this.l.claimKey(slots[i]!))
      const items = group.map((i) => scriptItem(slots[i]!.field, reqs[i]!.fingerprint, reqs[i]!.eventId))
      const args: (string | number | Buffer)[] = [this.l.legacyPrefix('claim'), this.claimNow(now), leaseMs, this.l.fieldLength, Buffer.concat(items)]
      if (this.l.legacy) args.push(group.map((i) => lengthPrefixed(reqs[i]!.key, reqs[i]!.fingerprint, reqs[i]!.eventId)).join(''))
      const reply = buffers(await CLAIM.runBuffer(this.l.client, keys, args), 'claim')
      group.forEach((at, i) => {
        const code = reply[3 * i]?.toString()
        const kind = reply[3 * i + 1]?.toString()
        const data = reply[3 * i + 2] ?? Buffer.alloc(0)
        const eventId = kind === 'v' ? claimEventIdOf(data) : kind === 'r' ? data.toString() : chunk[i]!.eventId
        if (code === 'claimed') out[at] = { outcome: 'claimed', eventId, takeover: false }
        else if (code === 'takeover') out[at] = { outcome: 'claimed', eventId, takeover: true }
        else if (code === 'duplicate' || code === 'in_flight' || code === 'conflict') out[at] = { outcome: code, eventId }
        else throw new CdpError('internal_error', `redis claim: unexpected outcome ${String(code)}`)
      })
    }
    return out
  }

  private async change(op: 'commit' | 'release' | 'abandon', items: { key: string; eventId: string }[]): Promise<void> {
    const names = items.map((r) => r.key)
    const slots = names.map((k) => this.l.slot(k))
    for (const group of this.l.groups(slots)) {
      const keys = group.map((i) => this.l.claimKey(slots[i]!))
      const blob = Buffer.concat(group.map((i) => scriptEventItem(slots[i]!.field, items[i]!.eventId)))
      const args: (string | number | Buffer)[] = [this.l.legacyPrefix('claim'), op, this.l.fieldLength, blob]
      if (this.l.legacy) args.push(group.map((i) => lengthPrefixed(items[i]!.key, items[i]!.eventId)).join(''))
      await CLAIM_CHANGE.run(this.l.client, keys, args)
    }
  }

  commitMany(items: { key: string; eventId: string }[]): Promise<void> { return this.change('commit', items) }

  releaseMany(items: { key: string; eventId: string }[]): Promise<void> { return this.change('release', items) }

  abandonMany(items: { key: string; eventId: string }[]): Promise<void> { return this.change('abandon', items) }

  async get(key: string): Promise<ClaimInfo | undefined> {
    const s = this.l.slot(key)
    const raw = await redisCall(this.l.client, 'claim get', (c) => c.hgetBuffer(this.l.claimKey(s), s.field))
    if (raw != null) {
      const rec = decodeClaim(raw)
      return { state: rec.state, eventId: rec.eventId, claimedAt: rec.claimedAt }
    }
    if (!this.l.legacy) return undefined
    const [st, e, t] = await redisCall(this.l.client, 'claim get', (c) => c.hmget(this.l.legacyClaimKey(key), 's', 'e', 't'))
    if (st == null || e == null) return undefined
    return { state: st === 'c' ? 'committed' : 'pending', eventId: e, claimedAt: Number(t ?? 0) }
  }
}

class RedisDedupStore implements DedupStore {
  constructor(private readonly l: Layout) {}

  async checkMany(items: { key: string; ref: FactRef }[]): Promise<DedupOutcome[]> {
    const out: DedupOutcome[] = new Array<DedupOutcome>(items.length)
    const names = items.map((r) => r.key)
    const slots = names.map((k) => this.l.slot(k))
    for (const group of this.l.groups(slots)) {
      const keys = group.map((i) => this.l.dedupKey(slots[i]!))
      const blob = Buffer.concat(group.map((i) => {
        const { ref } = items[i]!
        return scriptItem(slots[i]!.field, ref.fingerprint, ref.eventId, encodePosition(ref.partition, ref.offset))
      }))
      const args: (string | number | Buffer)[] = [this.l.legacyPrefix('dedup'), this.l.fieldLength, blob]
      if (this.l.legacy) {
        args.push(group.map((i) => {
          const { key, ref } = items[i]!
          return lengthPrefixed(key, ref.fingerprint, String(ref.partition), ref.offset)
        }).join(''))
      }
      const reply = buffers(await DEDUP.runBuffer(this.l.client, keys, args), 'dedup')
      group.forEach((at, i) => {
        const [code, kind, a, b, c, d] = reply.slice(6 * i, 6 * i + 6).map((x, j) => (j === 2 ? x : x.toString())) as [string, string, Buffer, string, string, string]
        if (code === 'first' || code === 'redelivered') { out[at] = { outcome: 'first', redelivered: code === 'redelivered' }; return }
        const original: FactRef = kind === 'v'
          ? decodeFact(a)
          : { eventId: a.toString(), fingerprint: b, partition: Number(c), offset: d, ...(code === 'erased' ? { erased: true } : {}) }
        if (code === 'repeat' || code === 'conflict' || code === 'erased') out[at] = { outcome: code, original }
        else throw new CdpError('internal_error', `redis dedup: unexpected outcome ${String(code)}`)
      })
    }
    return out
  }

  async get(key: string): Promise<FactRef | undefined> {
    const s = this.l.slot(key)
    const raw = await redisCall(this.l.client, 'dedup get', (c) => c.hgetBuffer(this.l.dedupKey(s), s.field))
    if (raw != null) return decodeFact(raw)
    if (!this.l.legacy) return undefined
    const cur = await redisCall(this.l.client, 'dedup get', (c) => c.hmget(this.l.legacyDedupKey(key), 'e', 'f', 'p', 'o', 'x'))
    const [eventId, fingerprint, partition, offset, erased] = cur
    if (eventId == null || fingerprint == null || partition == null || offset == null) return undefined
    return { eventId, fingerprint, partition: Number(partition), offset, ...(erased === '1' ? { erased: true } : {}) }
  }

  // field `r` of the tuple's own hash in the per-fact layout: marks are rare (one per conflict),
  // and one-key commands run anywhere on a Cluster
  async reassertedAfter(keys: string[]): Promise<(string | undefined)[]> {
    return Promise.all(keys.map(async (k) =>
      (await redisCall(this.l.client, 'dedup reasserted', (c) => c.hget(this.l.legacyDedupKey(k), 'r'))) ?? undefined))
  }

  async markErased(keys: string[]): Promise<number> {
    let n = 0
    const slots = keys.map((k) => this.l.slot(k))
    for (const group of this.l.groups(slots)) {
      const args: (string | Buffer)[] = [this.l.legacyPrefix('dedup')]
      for (const i of group) {
        args.push(slots[i]!.field)
        if (this.l.legacy) args.push(keys[i]!)
      }
      n += Number(await ERASE.run(this.l.client, group.map((i) => this.l.dedupKey(slots[i]!)), args))
    }
    return n
  }

  async markReasserted(items: { key: string; after: string }[]): Promise<void> {
    for (const { key, after } of items) {
      await redisCall(this.l.client, 'dedup mark reasserted', (c) => c.hset(this.l.legacyDedupKey(key), 'r', after))
    }
  }
}

class RedisKeyStore implements KeyStore {
  readonly #hash: string
  constructor(private readonly client: RedisConnection, prefix: string) {
    this.#hash = `${prefix}:apikeys`
  }

  async putKey(rec: ApiKeyRecord): Promise<void> {
    await redisCall(this.client, 'keys put', (c) => c.hset(this.#hash, rec.id, JSON.stringify(rec)))
  }

  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    const raw = await redisCall(this.client, 'keys get', (c) => c.hget(this.#hash, id))
    return raw === null ? undefined : (JSON.parse(raw) as ApiKeyRecord)
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    const raw = await redisCall(this.client, 'keys list', (c) => c.hvals(this.#hash))
    return raw.map((r) => JSON.parse(r) as ApiKeyRecord).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }
}

export interface RedisStateOptions extends RedisClientOptions {
  url: string
  /** every key starts with `<prefix>:` (config.keys.prefix) */
  prefix: string
  /** share an existing client (a Redis, or a Cluster) instead of creating one; it is then not closed by close() */
  client?: RedisConnection
  /** the clock claim leases are judged on (default `server`: Redis TIME) */
  claimClock?: ClaimClock
  /** bits of the fact digest that pick a bucket (default DEFAULT_BUCKET_BITS; fixed for a store's life) */
  bucketBits?: number
  /** look facts up in the per-fact layout written before buckets (default: on, except with a Cluster client) */
  legacyLayout?: boolean
}

export function createRedisStateStores(opts: RedisStateOptions): StateStores {
  const client = opts.client ?? createRedisClient(opts.url, opts)
  const owned = opts.client === undefined
  const bits = opts.bucketBits ?? DEFAULT_BUCKET_BITS
  if (!Number.isInteger(bits) || bits < 8 || bits > 32) throw new CdpError('internal_error', `redis state: bucketBits ${bits} is not 8..32`)
  const layout = new Layout(client, opts.prefix, bits, opts.legacyLayout ?? !client.isCluster)
  return {
    claims: new RedisClaimStore(layout, opts.claimClock ?? 'server'),
    dedup: new RedisDedupStore(layout),
    keys: new RedisKeyStore(client, opts.prefix),
    ping: () => pingRedis(client),
    close: async () => {
      if (owned) await closeRedisClient(client)
    },
  }
}
