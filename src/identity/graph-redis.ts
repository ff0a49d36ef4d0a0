/**
 * The identity graph on Redis (scale-out): consumers in different processes resolve against the
 * same graph, so each resolveMany call is ONE Lua script, atomic with respect to every other
 * consumer. The script is a port of resolveInTxn in graph.ts (same rules, same records); the
 * identities arrive already deduplicated, sorted and with the profile id they would create
 * (only for those that can: see mayCreate), so
 * hashing and ordering live only in TypeScript.
 *
 * Keys, per tenant under one hash tag (a Redis Cluster keeps a tenant's graph in one slot):
 *   <prefix>:idg:{<tenant>}:i:<TYPE>:<value>   hash  p (profile id), n (device link count)
 *   <prefix>:idg:{<tenant>}:p:<profile id>     hash  c (created at, ms), x (EXTERNAL id), m (merged into)
 *   <prefix>:idg:{<tenant>}:a:<profile id>     set   ids merged into this (canonical) profile
 *   <prefix>:idg:{<tenant>}:r:<event id>       string  a kept result (rule 8), JSON, expires
 * The script builds profile keys from what it reads, so it cannot declare them all in KEYS.
 */
import type { Redis } from 'ioredis'
import { CdpError } from '../errors.js'
import { closeRedisClient, createRedisClient, pingRedis, redisCall, RedisScript, type RedisClientOptions } from '../state/redis-client.js'
import {
  identityKey, mayCreate, mergeReason, prepareIdentities, profileIdFor,
  type BlockReason, type GraphErasure, type GraphOptions, type IdentityGraph, type ResolveInput, type ResolveResult,
} from './graph.js'
import type { IdentityType } from './normalize.js'

/** events per script call: bounds how long one script holds Redis; chunks run in order */
const CHUNK = 500

const RESOLVE = new RedisScript('identity resolve', `
local now = ARGV[1]
local maxDev = tonumber(ARGV[2])
local nEv = tonumber(ARGV[3])
local keepMs = ARGV[4]
local pos = 5
local results = {}

local function getProfile(base, id)
  local r = redis.call('HMGET', base .. 'p:' .. id, 'c', 'x', 'm')
  if not r[1] then return nil end
  return { c = tonumber(r[1]), x = r[2], m = r[3] }
end

local function canonical(base, id)
  local prof = getProfile(base, id)
  local hops = 0
  while prof and prof.m do
    id = prof.m
    prof = getProfile(base, id)
    hops = hops + 1
    if hops > 64 then error('identity graph: merge chain too long at ' .. id) end
  end
  if not prof then error('identity graph: missing profile ' .. id) end
  return id, prof
end

-- one event: the rules of resolveInTxn (graph.ts); entries are already sorted and deduplicated
local function resolve(base, entries)
  local k = #entries
  for i = 1, k do
    local e = entries[i]
    e.ikey = base .. 'i:' .. e.t .. ':' .. e.v
    local r = redis.call('HMGET', e.ikey, 'p', 'n')
    if r[1] then
      e.known = true
      e.p = r[1]
      e.n = tonumber(r[2]) or 0
      e.pid, e.prof = canonical(base, r[1])
      e.sat = (e.t == 'DEVICE' and e.n >= maxDev)
    end
  end

  local function extOf(e)
    if e.t == 'EXTERNAL' then return e.v end
    if e.known and e.prof.x then return e.prof.x end
    return false
  end

  local anchor = false
  for i = 1, k do
    local e = entries[i]
    if not e.sat then
      anchor = extOf(e)
      if anchor then break end
    end
  end
  local accepted = {}
  for i = 1, k do
    local e = entries[i]
    if not e.sat then
      local x = extOf(e)
      if anchor and x and x ~= anchor then e.conflict = true else accepted[#accepted + 1] = e end
    end
  end

  if #accepted == 0 then
    local target = ''
    for i = 1, k do
      if entries[i].sat then target = entries[i].pid; break end
    end
    return { target, {}, {}, {}, {}, now }
  end

  local order, seen = {}, {}
  for _, e in ipairs(accepted) do
    if e.known and not seen[e.pid] then seen[e.pid] = e; order[#order + 1] = e.pid end
  end
  local target
  local created = (#order == 0)
  if created then
    target = accepted[1].cand
    if target == '' then error('identity graph: no profile id for ' .. accepted[1].t) end
  else
    target = order[1]
    local bc = seen[target].prof.c
    for j = 2, #order do
      local pid = order[j]
      local c = seen[pid].prof.c
      if c < bc or (c == bc and pid < target) then target = pid; bc = c end
    end
  end

  local merges, aliases = {}, {}
  local targetSet = base .. 'a:' .. target
  for _, pid in ipairs(order) do
    if pid ~= target then
      merges[#merges + 1] = pid
      merges[#merges + 1] = seen[pid].t
      aliases[#aliases + 1] = pid
      local aset = base .. 'a:' .. pid
      local moved = redis.call('SMEMBERS', aset)
      for _, m in ipairs(moved) do
        redis.call('HSET', base .. 'p:' .. m, 'm', target)
        redis.call('SADD', targetSet, m)
        aliases[#aliases + 1] = m
      end
      redis.call('DEL', aset)
      redis.call('HSET', base .. 'p:' .. pid, 'm', target)
      redis.call('SADD', targetSet, pid)
    end
  end
  if created then redis.call('HSET', base .. 'p:' .. target, 'c', now) end
  if anchor and (created or seen[target].prof.x ~= anchor) then redis.call('HSET', base .. 'p:' .. target, 'x', anchor) end

  local size = #order
  local newIdx = {}
  for _, e in ipairs(accepted) do
    local isDev = (e.t == 'DEVICE')
    if not e.known then
      local n = 0
      if isDev then n = math.max(1, size) end
      redis.call('HSET', e.ikey, 'p', target, 'n', n)
      newIdx[#newIdx + 1] = e.idx
    else
      local n = e.n
      if isDev then n = n + size - 1 end
      if e.p ~= target or n ~= e.n then redis.call('HSET', e.ikey, 'p', target, 'n', n) end
    end
  end

  local blocked = {}
  for i = 1, k do
    local e = entries[i]
    if e.conflict then
      blocked[#blocked + 1] = i
      blocked[#blocked + 1] = 'conflicting_external_id'
      blocked[#blocked + 1] = e.pid or ''
    elseif e.sat and e.pid ~= target and not seen[e.pid] then
      blocked[#blocked + 1] = i
      blocked[#blocked + 1] = 'shared_device'
      blocked[#blocked + 1] = e.pid
    end
  end
  return { target, merges, blocked, newIdx, aliases, now }
end

for ev = 1, nEv do
  local base = ARGV[pos]
  local rkey = base .. 'r:' .. ARGV[pos + 1]
  local k = tonumber(ARGV[pos + 2])
  pos = pos + 3
  local entries = {}
  for i = 1, k do
    entries[i] = { t = ARGV[pos], v = ARGV[pos + 1], cand = ARGV[pos + 2], idx = i, known = false, sat = false }
    pos = pos + 3
  end
  local kept = redis.call('GET', rkey)
  if kept then
    results[ev] = cjson.decode(kept)
  else
    local r = resolve(base, entries)
    if #r[2] > 0 or #r[3] > 0 or #r[4] > 0 or #r[5] > 0 then
      redis.call('SET', rkey, cjson.encode(r), 'PX', keepMs)
    end
    results[ev] = r
  end
end
return results
`)

/** ARGV: base, then ids; replies the canonical id of each (the id itself when unknown) */
/** the canonical walk along merge links (a missing profile ends it there), for every script that needs it */
const WALK = `
local function walk(base, id)
  local hops = 0
  local m = redis.call('HGET', base .. 'p:' .. id, 'm')
  while m do
    id = m
    hops = hops + 1
    if hops > 64 then error('identity graph: merge chain too long at ' .. id) end
    m = redis.call('HGET', base .. 'p:' .. id, 'm')
  end
  return id
end
`

const CANONICAL = new RedisScript('identity canonical', `${WALK}
local base = ARGV[1]
local out = {}
for i = 2, #ARGV do out[#out + 1] = walk(base, ARGV[i]) end
return out
`)


/** ARGV: base, then identity keys (TYPE:value); replies the canonical profiles and the ids merged into them */
const PROFILES_OF = new RedisScript('identity profiles', `${WALK}
local base = ARGV[1]
local seen, out = {}, {}
for i = 2, #ARGV do
  local p = redis.call('HGET', base .. 'i:' .. ARGV[i], 'p')
  if p then
    local c = walk(base, p)
    if not seen[c] then seen[c] = true; out[#out + 1] = c end
    for _, a in ipairs(redis.call('SMEMBERS', base .. 'a:' .. c)) do
      if not seen[a] then seen[a] = true; out[#out + 1] = a end
    end
  end
end
return out
`)

/** ARGV: base, n profiles, ids..., n identities, keys..., n events, ids...; replies {identities, profiles, kept} removed */
const ERASE = new RedisScript('identity erase', `${WALK}
local base = ARGV[1]
local pos = 2
local gone = {}
local nP = tonumber(ARGV[pos]); pos = pos + 1
local pids = {}
for i = 1, nP do gone[ARGV[pos]] = true; pids[#pids + 1] = ARGV[pos]; pos = pos + 1 end
local counts = { 0, 0, 0 }
local nI = tonumber(ARGV[pos]); pos = pos + 1
for i = 1, nI do
  local ikey = base .. 'i:' .. ARGV[pos]; pos = pos + 1
  local p = redis.call('HGET', ikey, 'p')
  if p and (gone[p] or gone[walk(base, p)]) then redis.call('DEL', ikey); counts[1] = counts[1] + 1 end
end
for _, id in ipairs(pids) do
  counts[2] = counts[2] + redis.call('DEL', base .. 'p:' .. id)
  redis.call('DEL', base .. 'a:' .. id)
end
local nE = tonumber(ARGV[pos]); pos = pos + 1
for i = 1, nE do counts[3] = counts[3] + redis.call('DEL', base .. 'r:' .. ARGV[pos]); pos = pos + 1 end
return counts
`)

type EventReply = [string, (string | number)[], (string | number)[], number[], string[], string]

export interface RedisGraphOptions extends GraphOptions, RedisClientOptions {
  url: string
  /** config.keys.prefix */
  prefix: string
  /** share an existing client instead of creating one; it is then not closed by close() */
  client?: Redis
  /** how long a kept result (rule 8) outlives a consumer that never calls forget(); default 1 hour */
  replayTtlMs?: number
}

class RedisIdentityGraph implements IdentityGraph {
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly opts: GraphOptions,
    private readonly owned: boolean,
    private readonly keepMs: number,
  ) {}

  #base(tenant: string): string {
    // encodeURIComponent escapes { and }, so the tenant cannot break out of its hash tag
    return `${this.prefix}:idg:{${encodeURIComponent(tenant)}}:`
  }

  async resolve(...args: Parameters<IdentityGraph['resolve']>): Promise<ResolveResult> {
    const [tenant, identities, event, now] = args
    const [r] = await this.resolveMany([{ tenant, identities, event }], now)
    return r as ResolveResult
  }

  async resolveMany(items: ResolveInput[], now: number): Promise<ResolveResult[]> {
    const out: ResolveResult[] = []
    for (let i = 0; i < items.length; i += CHUNK) out.push(...await this.#resolveChunk(items.slice(i, i + CHUNK), now))
    return out
  }

  async #resolveChunk(items: ResolveInput[], now: number): Promise<ResolveResult[]> {
    const prepared = items.map((item) => prepareIdentities(item.identities))
    const args: (string | number)[] = [now, this.opts.maxProfilesPerDevice, items.length, this.keepMs]
    items.forEach((item, i) => {
      const ids = prepared[i] ?? []
      args.push(this.#base(item.tenant), item.event.eventId, ids.length)
      ids.forEach((id, n) => args.push(id.type, id.value, mayCreate(ids, n) ? profileIdFor(item.tenant, id) : ''))
    })
    const reply = await RESOLVE.run(this.client, [], args)
    if (!Array.isArray(reply) || reply.length !== items.length) throw new CdpError('internal_error', 'redis identity resolve: unexpected reply')
    return (reply as EventReply[]).map(([target, merges, blocked, newIdx, aliases, atRaw], i) => {
      const item = items[i] as ResolveInput
      // a kept result (rule 8) carries the time of its first run
      const at = Number(atRaw)
      const ids = prepared[i] ?? []
      const { tenant } = item
      const eventId = item.event.eventId
      const identityAt = (idx: number) => {
        const p = ids[idx - 1]
        if (p === undefined) throw new CdpError('internal_error', 'redis identity resolve: identity index out of range')
        return { type: p.type, value: p.value, raw: p.raw }
      }
      const r: ResolveResult = { profileId: target === '' ? null : target, merges: [], blocked: [], newIdentities: [], aliases: [] }
      for (let j = 0; j < merges.length; j += 2) {
        r.merges.push({
          tenant, fromProfileId: String(merges[j]), toProfileId: target, reason: mergeReason(merges[j + 1] as IdentityType), eventId, at,
        })
      }
      for (let j = 0; j < blocked.length; j += 3) {
        const pid = String(blocked[j + 2])
        r.blocked.push({ identity: identityAt(Number(blocked[j])), reason: blocked[j + 1] as BlockReason, profileId: pid === '' ? null : pid })
      }
      for (const idx of newIdx) r.newIdentities.push({ tenant, identity: identityAt(idx), profileId: target, eventId, at })
      for (const id of aliases) r.aliases.push({ tenant, profileId: id, canonicalId: target, at })
      return r
    })
  }

  async canonical(tenant: string, profileId: string): Promise<string> {
    const [id] = await this.canonicalMany(tenant, [profileId])
    return id ?? profileId
  }

  async canonicalMany(tenant: string, profileIds: string[]): Promise<string[]> {
    if (profileIds.length === 0) return []
    const reply = await CANONICAL.run(this.client, [], [this.#base(tenant), ...profileIds])
    if (!Array.isArray(reply)) throw new CdpError('internal_error', 'redis identity canonical: unexpected reply')
    return reply as string[]
  }

  async lookup(...[tenant, identity]: Parameters<IdentityGraph['lookup']>): Promise<string | undefined> {
    const p = await redisCall(this.client, 'identity lookup', (c) => c.hget(`${this.#base(tenant)}i:${identity.type}:${identity.value}`, 'p'))
    return p === null ? undefined : this.canonical(tenant, p)
  }

  async forget(events: { tenant: string; eventId: string }[]): Promise<void> {
    if (events.length === 0) return
    const keys = events.map((e) => `${this.#base(e.tenant)}r:${e.eventId}`)
    await redisCall(this.client, 'identity forget', (c) => c.unlink(...keys))
  }

  async profilesOf(...[tenant, identities]: Parameters<IdentityGraph['profilesOf']>): Promise<string[]> {
    if (identities.length === 0) return []
    const reply = await PROFILES_OF.run(this.client, [], [this.#base(tenant), ...identities.map(identityKey)])
    if (!Array.isArray(reply)) throw new CdpError('internal_error', 'redis identity profiles: unexpected reply')
    return (reply as string[]).sort()
  }

  async erase(...[tenant, what]: Parameters<IdentityGraph['erase']>): Promise<GraphErasure> {
    const ids = [...new Set(what.profileIds)]
    const reply = await ERASE.run(this.client, [], [
      this.#base(tenant), ids.length, ...ids, what.identities.length, ...what.identities.map(identityKey), what.eventIds.length, ...what.eventIds,
    ])
    if (!Array.isArray(reply) || reply.length !== 3) throw new CdpError('internal_error', 'redis identity erase: unexpected reply')
    const [identities, profiles, keptResults] = (reply as number[]).map(Number) as [number, number, number]
    return { identities, profiles, keptResults }
  }

  ping(): Promise<boolean> {
    return pingRedis(this.client)
  }

  async close(): Promise<void> {
    if (this.owned) await closeRedisClient(this.client)
  }
}

export function createRedisIdentityGraph(opts: RedisGraphOptions): IdentityGraph {
  const client = opts.client ?? createRedisClient(opts.url, opts)
  return new RedisIdentityGraph(
    client, opts.prefix, { maxProfilesPerDevice: opts.maxProfilesPerDevice }, opts.client === undefined, Math.max(1, opts.replayTtlMs ?? 3600_000),
  )
}
