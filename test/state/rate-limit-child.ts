/**
 * One process of the cross-process rate-limit test (rate-limit-store.test.ts): opens the LMDB
 * store at argv[2], waits for the go file argv[3] to exist (so both processes charge at once),
 * charges argv[4] times cost 1 against a limit of argv[5], prints how many were accepted.
 */
import { existsSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { openLmdbRateLimitStore } from '../../src/state/rate-limit-store-lmdb.js'

const [path, go, tries, limit] = process.argv.slice(2) as [string, string, string, string]
const store = openLmdbRateLimitStore(path)
const buckets = [{ id: 'cdp:rl:{acme}:key:k1', limit: Number(limit) }, { id: 'cdp:rl:{acme}:tenant', limit: Number(limit) * 10 }]
process.stdout.write('ready\n')
while (!existsSync(go)) await sleep(5)
let accepted = 0
// 8 in flight, each lane pausing between charges, so the charges of both processes spread over
// a few hundred ms and interleave at the write lock (a charge alone takes microseconds)
let left = Number(tries)
const lane = async (): Promise<void> => {
  while (left-- > 0) {
    if ((await store.charge(buckets, 1, 600_000)).ok) accepted++
    await sleep(2)
  }
}
await Promise.all(Array.from({ length: 8 }, lane))
await store.close()
process.stdout.write(`accepted ${accepted}\n`)
