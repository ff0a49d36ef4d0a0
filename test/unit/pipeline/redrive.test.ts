import t from 'tap'
import { Redriver, redriveMessage, type RedriveDeps } from '../../../src/pipeline/redrive.js'
import type { DeadLetterFilter, PendingDeadLetter } from '../../../src/clickhouse/dead-letters.js'
import { partitionFor } from '../../../src/avro/partition.js'
import type { TopicMessage } from '../../../src/kafka/producer.js'
import { isCdpError } from '../../../src/errors.js'

const letter = (n: number): PendingDeadLetter => ({
  tenant: 'acme', reason_code: 'wrong_partition', topic: 'events', kafka_partition: 2, kafka_offset: String(n),
  key: JSON.stringify(['acme', 'svc', `e-${n}`]), value_base64: Buffer.from(`v${n}`).toString('base64'),
})

/** a dead_letters table in memory: redrives recorded by position */
function fakeTables(letters: PendingDeadLetter[]) {
  const redriven = new Map<string, string>()
  const pend = (f: DeadLetterFilter) => letters.filter((l) => l.reason_code === f.reason && !redriven.has(l.kafka_offset))
  const tables: RedriveDeps['tables'] = {
    pending: async (f, limit) => pend(f).slice(0, limit),
    pendingCount: async (f) => pend(f).length,
    recordRedrives: async (ls, id) => { for (const l of ls) redriven.set(l.kafka_offset, id) },
  }
  return { tables, redriven }
}

void t.test('redriveMessage: original bytes, the murmur2 partition of the key, provenance headers', async (t) => {
  const m = redriveMessage(letter(7), 6, 'rdr_x')
  t.same(m.key, Buffer.from(letter(7).key))
  t.same(m.value, Buffer.from('v7'))
  t.equal(m.partition, partitionFor(Buffer.from(letter(7).key), 6))
  t.same(m.headers, { 'cdp-redriven-from': '2/7', 'cdp-redrive-id': 'rdr_x', 'cdp-redrive-reason': 'wrong_partition' })
})

void t.test('redrive in chunks, each dead letter once; dry run and a second run send nothing', async (t) => {
  const { tables, redriven } = fakeTables([1, 2, 3].map(letter))
  const sent: TopicMessage[][] = []
  const r = new Redriver({ tables, produce: async (m) => { sent.push(m) }, partitions: 3, log: { info: () => undefined } as unknown as RedriveDeps['log'] })
  t.same(await r.run({ reason: 'wrong_partition', limit: 10, dryRun: true, redriveId: 'dry' }), { redrive_id: 'dry', dry_run: true, matched: 3, redriven: 0, remaining: 3 })
  t.equal(sent.length, 0, 'dry run: nothing produced')
  const a = await r.run({ reason: 'wrong_partition', limit: 2, redriveId: 'rdr_1' })
  t.same(a, { redrive_id: 'rdr_1', dry_run: false, matched: 3, redriven: 2, remaining: 1 })
  const b = await r.run({ reason: 'wrong_partition', limit: 2, redriveId: 'rdr_1' })
  t.same(b, { redrive_id: 'rdr_1', dry_run: false, matched: 1, redriven: 1, remaining: 0 })
  t.same(sent.map((c) => c.map((m) => m.headers?.['cdp-redriven-from'])), [['2/1', '2/2'], ['2/3']])
  t.same([...redriven.values()], ['rdr_1', 'rdr_1', 'rdr_1'])
  t.same(await r.run({ reason: 'wrong_partition', limit: 2, redriveId: 'again' }), { redrive_id: 'again', dry_run: false, matched: 0, redriven: 0, remaining: 0 }, 'second run: nothing')
  t.equal(sent.length, 2, 'nothing more produced')
})

void t.test('a failed produce records nothing: the dead letters stay pending', async (t) => {
  const { tables, redriven } = fakeTables([letter(1)])
  const r = new Redriver({ tables, produce: async () => { throw new Error('broker away') }, partitions: 3, log: { info: () => undefined } as unknown as RedriveDeps['log'] })
  await t.rejects(r.run({ reason: 'wrong_partition', limit: 5 }), /broker away/)
  t.equal(redriven.size, 0)
  t.equal(await tables.pendingCount({ reason: 'wrong_partition' }), 1)
})

void t.test('bad_key and tuple_conflict are refused with a reason', async (t) => {
  const { tables } = fakeTables([])
  const r = new Redriver({ tables, produce: async () => undefined, partitions: 3, log: { info: () => undefined } as unknown as RedriveDeps['log'] })
  for (const reason of ['bad_key', 'tuple_conflict']) {
    const err = await r.run({ reason, limit: 5 }).catch((e: unknown) => e)
    t.ok(isCdpError(err) && err.code === 'bad_request' && err.message.includes('cannot be redriven'), reason)
  }
})
