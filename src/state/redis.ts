/**
 * Shared state stores on Redis, for many API and consumer processes. Every batch is decided by
 * one Lua script (EVALSHA), so it is atomic with respect to every other process; the scripts are
 * ports of the pure rules in rules.ts. All keys live under `<prefix>:`:
 *
 *   <prefix>:claim:<dedup key>   hash  s (p|c), e (event id), f (fingerprint), t (claimed at, ms)
 *   <prefix>:dedup:<dedup key>   hash  e, f, p (partition), o (offset): the first fact;
 *                                      x = 1 once an erasure erased it
 *   <prefix>:apikeys             hash  key id -> ApiKeyRecord as JSON
 *
 * Claims and dedup facts are permanent: dedup lasts forever per tuple. Every key a script touches
 * is passed in KEYS; the keys of one batch may sit in different cluster slots, which a Redis
 * Cluster would refuse (use one Redis, or a proxy that routes scripts).
 */
import type { Redis } from 'ioredis'
import { CdpError } from '../errors.js'
import { closeRedisClient, createRedisClient, pingRedis, redisCall, RedisScript, type RedisClientOptions } from './redis-client.js'
import type {
  ApiKeyRecord, ClaimInfo, ClaimOutcome, ClaimRequest, ClaimStore, DedupOutcome, DedupStore, FactRef, KeyStore, StateStores,
} from './types.js'

/** items per script call: bounds how long one script holds Redis; chunks run in order */
const CHUNK = 1000

// ARGV[1] is 'server' (the default, see claimNow) or the caller's ms. On the server's clock every
// process judges a lease alike: a process whose own clock runs ahead by more than the lease
// would otherwise see every live claim as abandoned and take it over (a second 'accepted').
const CLAIM = new RedisScript('claim', `
local now
if ARGV[1] == 'server' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local at = string.format('%.0f', now)
local lease = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local eid = ARGV[2 * i + 1]
  local fp = ARGV[2 * i + 2]
  local cur = redis.call('HMGET', k, 's', 'e', 'f', 't')
  if not cur[1] then
    redis.call('HSET', k, 's', 'p', 'e', eid, 'f', fp, 't', at)
    out[#out + 1] = 'claimed'; out[#out + 1] = eid
  elseif cur[3] ~= fp then
    out[#out + 1] = 'conflict'; out[#out + 1] = cur[2]
  elseif cur[1] == 'c' then
    out[#out + 1] = 'duplicate'; out[#out + 1] = cur[2]
  elseif cur[2] == eid then
    out[#out + 1] = 'claimed'; out[#out + 1] = eid
  elseif tonumber(cur[4]) + lease < now then
    redis.call('HSET', k, 't', at)
    out[#out + 1] = 'takeover'; out[#out + 1] = cur[2]
  else
    out[#out + 1] = 'in_flight'; out[#out + 1] = cur[2]
  end
end
return out
`)

const COMMIT = new RedisScript('commit', `
for i = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 's', 'e')
  if cur[1] == 'p' and cur[2] == ARGV[i] then redis.call('HSET', KEYS[i], 's', 'c') end
end
return #KEYS
`)

const ERASE = new RedisScript('dedup erase', `
local n = 0
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HSET', KEYS[i], 'x', '1'); n = n + 1 end
end
return n
`)

const RELEASE = new RedisScript('release', `
for i = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 's', 'e')
  if cur[1] == 'p' and cur[2] == ARGV[i] then redis.call('DEL', KEYS[i]) end
end
return #KEYS
`)

// abandon: the claim keeps its event id, its lease ends now ('t' 0), so the next claim takes over
const ABANDON = new RedisScript('abandon', `
for i = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 's', 'e')
  if cur[1] == 'p' and cur[2] == ARGV[i] then redis.call('HSET', KEYS[i], 't', '0') end
end
return #KEYS
`)

const DEDUP = new RedisScript('dedup', `
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local b = 4 * (i - 1)
  local eid, fp, part, off = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local cur = redis.call('HMGET', k, 'e', 'f', 'p', 'o', 'x')
  local code
  if not cur[1] then
    redis.call('HSET', k, 'e', eid, 'f', fp, 'p', part, 'o', off)
    code = 'first'
  elseif cur[5] == '1' then
    code = 'erased'
  elseif cur[3] == part and cur[4] == off then
    code = 'redelivered'
  elseif cur[2] == fp then
    code = 'repeat'
  else
    code = 'conflict'
  end
  out[#out + 1] = code
  out[#out + 1] = cur[1] or ''
  out[#out + 1] = cur[2] or ''
  out[#out + 1] = cur[3] or ''
  out[#out + 1] = cur[4] or ''
end
return out
`)

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK))
  return out
}

function strings(reply: unknown, what: string): string[] {
  if (!Array.isArray(reply)) throw new CdpError('internal_error', `redis ${what}: unexpected reply`)
  return reply as string[]
}

/**
 * Whose clock judges claim leases: `server` (Redis TIME, inside the script: one clock for every
 * process) or `caller` (the `now` each call passes; for the shared contract suite, which steps
 * time by hand).
 */
export type ClaimClock = 'server' | 'caller'

class RedisClaimStore implements ClaimStore {
  constructor(private readonly client: Redis, private readonly prefix: string, private readonly clock: ClaimClock) {}

  /** the script's first argument: the marker that makes it read Redis TIME, or the caller's ms */
  private claimNow(now: number): string | number {
    return this.clock === 'server' ? 'server' : now
  }

  async claimMany(reqs: ClaimRequest[], now: number, leaseMs: number): Promise<ClaimOutcome[]> {
    const out: ClaimOutcome[] = []
    for (const chunk of chunks(reqs)) {
      const keys = chunk.map((r) => `${this.prefix}:claim:${r.key}`)
      const args: (string | number)[] = [this.claimNow(now), leaseMs]
      for (const r of chunk) args.push(r.eventId, r.fingerprint)
      const reply = strings(await CLAIM.run(this.client, keys, args), 'claim')
      for (let i = 0; i < chunk.length; i++) {
        const code = reply[2 * i]
        const eventId = reply[2 * i + 1] ?? ''
        if (code === 'claimed') out.push({ outcome: 'claimed', eventId, takeover: false })
        else if (code === 'takeover') out.push({ outcome: 'claimed', eventId, takeover: true })
        else if (code === 'duplicate' || code === 'in_flight' || code === 'conflict') out.push({ outcome: code, eventId })
        else throw new CdpError('internal_error', `redis claim: unexpected outcome ${String(code)}`)
      }
    }
    return out
  }

  async commitMany(items: { key: string; eventId: string }[]): Promise<void> {
    for (const chunk of chunks(items)) {
      await COMMIT.run(this.client, chunk.map((i) => `${this.prefix}:claim:${i.key}`), chunk.map((i) => i.eventId))
    }
  }

  async releaseMany(items: { key: string; eventId: string }[]): Promise<void> {
    for (const chunk of chunks(items)) {
      await RELEASE.run(this.client, chunk.map((i) => `${this.prefix}:claim:${i.key}`), chunk.map((i) => i.eventId))
    }
  }

  async get(key: string): Promise<ClaimInfo | undefined> {
    const [s, e, t] = await redisCall(this.client, 'claim get', (c) => c.hmget(`${this.prefix}:claim:${key}`, 's', 'e', 't'))
    if (s == null || e == null) return undefined
    return { state: s === 'c' ? 'committed' : 'pending', eventId: e, claimedAt: Number(t ?? 0) }
  }

  async abandonMany(items: { key: string; eventId: string }[]): Promise<void> {
    for (const chunk of chunks(items)) {
      await ABANDON.run(this.client, chunk.map((i) => `${this.prefix}:claim:${i.key}`), chunk.map((i) => i.eventId))
    }
  }
}

class RedisDedupStore implements DedupStore {
  constructor(private readonly client: Redis, private readonly prefix: string) {}

  async checkMany(items: { key: string; ref: FactRef }[]): Promise<DedupOutcome[]> {
    const out: DedupOutcome[] = []
    for (const chunk of chunks(items)) {
      const keys = chunk.map((i) => `${this.prefix}:dedup:${i.key}`)
      const args: (string | number)[] = []
      for (const { ref } of chunk) args.push(ref.eventId, ref.fingerprint, String(ref.partition), ref.offset)
      const reply = strings(await DEDUP.run(this.client, keys, args), 'dedup')
      for (let i = 0; i < chunk.length; i++) {
        const [code, eventId = '', fingerprint = '', partition = '', offset = ''] = reply.slice(5 * i, 5 * i + 5)
        if (code === 'first' || code === 'redelivered') out.push({ outcome: 'first', redelivered: code === 'redelivered' })
        else if (code === 'repeat' || code === 'conflict') {
          out.push({ outcome: code, original: { eventId, fingerprint, partition: Number(partition), offset } })
        } else if (code === 'erased') {
          out.push({ outcome: code, original: { eventId, fingerprint, partition: Number(partition), offset, erased: true } })
        } else throw new CdpError('internal_error', `redis dedup: unexpected outcome ${String(code)}`)
      }
    }
    return out
  }

  async get(key: string): Promise<FactRef | undefined> {
    const cur = await redisCall(this.client, 'dedup get', (c) => c.hmget(`${this.prefix}:dedup:${key}`, 'e', 'f', 'p', 'o', 'x'))
    const [eventId, fingerprint, partition, offset, erased] = cur
    if (eventId == null || fingerprint == null || partition == null || offset == null) return undefined
    return { eventId, fingerprint, partition: Number(partition), offset, ...(erased === '1' ? { erased: true } : {}) }
  }

  // field `r` of the fact's own hash: it goes when the fact goes
  async reassertedAfter(keys: string[]): Promise<(string | undefined)[]> {
    return Promise.all(keys.map(async (k) =>
      (await redisCall(this.client, 'dedup reasserted', (c) => c.hget(`${this.prefix}:dedup:${k}`, 'r'))) ?? undefined))
  }

  async markErased(keys: string[]): Promise<number> {
    let n = 0
    for (const chunk of chunks(keys)) n += Number(await ERASE.run(this.client, chunk.map((k) => `${this.prefix}:dedup:${k}`), []))
    return n
  }

  async markReasserted(items: { key: string; after: string }[]): Promise<void> {
    for (const { key, after } of items) {
      await redisCall(this.client, 'dedup mark reasserted', (c) => c.hset(`${this.prefix}:dedup:${key}`, 'r', after))
    }
  }
}

class RedisKeyStore implements KeyStore {
  readonly #hash: string
  constructor(private readonly client: Redis, prefix: string) {
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
  /** share an existing client instead of creating one; it is then not closed by close() */
  client?: Redis
  /** the clock claim leases are judged on (default `server`: Redis TIME) */
  claimClock?: ClaimClock
}

export function createRedisStateStores(opts: RedisStateOptions): StateStores {
  const client = opts.client ?? createRedisClient(opts.url, opts)
  const owned = opts.client === undefined
  return {
    claims: new RedisClaimStore(client, opts.prefix, opts.claimClock ?? 'server'),
    dedup: new RedisDedupStore(client, opts.prefix),
    keys: new RedisKeyStore(client, opts.prefix),
    ping: () => pingRedis(client),
    close: async () => {
      if (owned) await closeRedisClient(client)
    },
  }
}
