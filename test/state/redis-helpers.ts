import { Redis } from 'ioredis'

/** remove a test's keys (its unique prefix) so a shared Redis does not fill up */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } catch {
    // best effort: an unreachable Redis already failed the test itself
  } finally {
    redis.disconnect()
  }
}
