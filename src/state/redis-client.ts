/**
 * The Redis client settings every state user shares, and Lua script execution.
 *
 * A dead or unreachable Redis must surface as a quick, retriable error, never as a request that
 * hangs: the client connects lazily, gives up a connection attempt after `connectTimeoutMs`,
 * fails a command after one reconnect attempt (`maxRetriesPerRequest: 1`) and bounds every
 * command with `commandTimeoutMs`. While the client is known to be disconnected (reconnecting
 * after a failure) a command fails at once instead of joining the offline queue. It keeps
 * reconnecting in the background, so requests succeed again as soon as Redis is back.
 * Auto-pipelining sends the scripts of concurrent requests in one round trip.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Redis, type Cluster } from 'ioredis'
import type { Config } from '../config/index.js'
import { CdpError, wrapForeign } from '../errors.js'
import { stateStoreErrorCode } from './errors.js'

export interface RedisClientOptions {
  connectTimeoutMs?: number
  commandTimeoutMs?: number
  /** Redis AUTH: ACL user (Redis 6+) and password; override what the URL carries */
  username?: string
  password?: string
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean }
}

/** AUTH and TLS from config.state (validated at load), for every Redis client of the service */
export function redisSecurity(state: Readonly<Config['state']>, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): Pick<RedisClientOptions, 'username' | 'password' | 'tls'> {
  const out: Pick<RedisClientOptions, 'username' | 'password' | 'tls'> = {}
  if (state.redisUsername != null) out.username = state.redisUsername
  if (state.redisPassword != null) out.password = state.redisPassword
  const t = state.redisTls
  if (t.enabled) {
    out.tls = { rejectUnauthorized: t.rejectUnauthorized }
    if (t.caFile != null) out.tls.ca = read(t.caFile)
    if (t.certFile != null) out.tls.cert = read(t.certFile)
    if (t.keyFile != null) out.tls.key = read(t.keyFile)
  }
  return out
}

export function createRedisClient(url: string, opts: RedisClientOptions = {}): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    commandTimeout: opts.commandTimeoutMs ?? 5000,
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
  })
  // without a listener ioredis prints every failed reconnect; callers see errors on their commands
  client.on('error', () => {})
  return client
}

/** quit politely when connected; drop the socket when never connected or when Redis is gone */
export async function closeRedisClient(client: Redis | Cluster): Promise<void> {
  if (client.status === 'end') return
  if (client.status !== 'ready') {
    client.disconnect()
    return
  }
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
}

/**
 * Run one client call with the store's failure rules: fail at once while disconnected, and map
 * any error to a CdpError (state_store_unavailable, or internal_error for a script bug).
 */
export async function redisCall<T, C extends Redis | Cluster>(client: C, op: string, fn: (client: C) => Promise<T>): Promise<T> {
  // 'wait' and 'connecting' queue the command until the (first) connection is up; after a
  // failure ('reconnecting') or close there is nothing to wait for
  if (client.status === 'reconnecting' || client.status === 'close' || client.status === 'end') {
    throw new CdpError('state_store_unavailable', `redis ${op}: not connected (${client.status})`)
  }
  try {
    return await fn(client)
  } catch (err) {
    throw wrapForeign(err, `redis ${op}`, stateStoreErrorCode)
  }
}

export async function pingRedis(client: Redis | Cluster): Promise<boolean> {
  try {
    return (await redisCall(client, 'ping', (c) => c.ping())) === 'PONG'
  } catch {
    return false
  }
}

interface BufferEval {
  evalshaBuffer(sha: string, numKeys: number, ...args: (string | number | Buffer)[]): Promise<unknown>
  evalBuffer(source: string, numKeys: number, ...args: (string | number | Buffer)[]): Promise<unknown>
}

/** A Lua script run with EVALSHA, loaded with EVAL the first time a server does not know it. */
export class RedisScript {
  readonly sha: string

  constructor(readonly name: string, readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  run(client: Redis | Cluster, keys: string[], args: (string | number | Buffer)[]): Promise<unknown> {
    return redisCall(client, this.name, async (c) => {
      try {
        return await c.evalsha(this.sha, keys.length, ...keys, ...args)
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
        return await c.eval(this.source, keys.length, ...keys, ...args)
      }
    })
  }

  /**
   * The same, with the reply's strings as Buffers (binary records). ioredis makes evalshaBuffer
   * and evalBuffer at run time (auto-pipelined like evalsha) but does not declare them.
   */
  runBuffer(client: Redis | Cluster, keys: string[], args: (string | number | Buffer)[]): Promise<unknown> {
    return redisCall(client, this.name, async (c) => {
      const b = c as unknown as BufferEval
      try {
        return await b.evalshaBuffer(this.sha, keys.length, ...keys, ...args)
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
        return await b.evalBuffer(this.source, keys.length, ...keys, ...args)
      }
    })
  }
}
