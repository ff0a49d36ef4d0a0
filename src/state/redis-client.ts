/**
 * The Redis client settings every state user shares, and Lua script execution.
 *
 * A dead or unreachable Redis must surface as a quick, retriable error, never as a request that
 * hangs: the client connects lazily, gives up a connection attempt after `connectTimeoutMs`,
 * fails a command after one reconnect attempt (`maxRetriesPerRequest: 1`) and bounds every
 * command with `commandTimeoutMs`. It keeps reconnecting in the background, so the next request
 * succeeds as soon as Redis is back. Auto-pipelining sends the scripts of concurrent requests in
 * one round trip.
 */
import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import { storeError } from './errors.js'

export interface RedisClientOptions {
  connectTimeoutMs?: number
  commandTimeoutMs?: number
}

export function createRedisClient(url: string, opts: RedisClientOptions = {}): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    commandTimeout: opts.commandTimeoutMs ?? 5000,
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
  })
  // without a listener ioredis prints every failed reconnect; callers see errors on their commands
  client.on('error', () => {})
  return client
}

/** quit politely when connected; drop the socket when never connected or when Redis is gone */
export async function closeRedisClient(client: Redis): Promise<void> {
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

export async function pingRedis(client: Redis): Promise<boolean> {
  try {
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  }
}

/** A Lua script run with EVALSHA, loaded with EVAL the first time a server does not know it. */
export class RedisScript {
  readonly sha: string

  constructor(readonly name: string, readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run(client: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      try {
        return await client.evalsha(this.sha, keys.length, ...keys, ...args)
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
        return await client.eval(this.source, keys.length, ...keys, ...args)
      }
    } catch (err) {
      throw storeError('redis', this.name, err)
    }
  }
}
