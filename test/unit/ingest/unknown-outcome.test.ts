/**
 * Issue 8, ack-lost produce: when a produce's outcome is unknown (no ack, connection lost after
 * the request was written) the record may be on the topic under the event id already chosen. A
 * retry must then be produced again under that SAME id (the consumer keeps the first record's
 * id and absorbs the repeat), so the id the client is finally given is the stored one. Only a
 * produce that certainly did not happen lets the retry start afresh.
 */
import t from 'tap'
import { IngestService } from '../../../src/ingest/service.js'
import { createMemoryStateStores } from '../../../src/state/memory.js'
import { loadConfig } from '../../../src/config/index.js'
import { CdpError } from '../../../src/errors.js'
import type { OutboundMessage, Ticket } from '../../../src/kafka/index.js'
import { SEED_EVENT } from '../../helpers/seed.js'

const config = loadConfig({ env: {}, overrides: { kafka: { produceTimeoutMs: 200 }, state: { claimLeaseMs: 60_000 } } })
const caller = { tenant: 'acme', sources: [] }

type Behaviour = 'ack' | 'lost-after-send' | 'not-sent'

/** a producer whose tickets behave as scripted, one behaviour per send, recording event ids "on the topic" */
function fakeProducer(script: Behaviour[]) {
  const onTopic: string[] = []
  const notSentErrors = new WeakSet<object>()
  let i = 0
  const send = (messages: OutboundMessage[]): Ticket => {
    const b = script[i++] ?? 'ack'
    const ids = messages.map((m) => m.value.toString('utf8'))
    if (b === 'not-sent') {
      const err = new CdpError('kafka_unavailable', 'no connection')
      notSentErrors.add(err)
      return { done: Promise.reject(err), cancel: () => false }
    }
    // "sent": the request reached the broker, which appended the records
    onTopic.push(...ids)
    if (b === 'ack') return { done: Promise.resolve(), cancel: () => false }
    return { done: Promise.reject(new CdpError('kafka_unavailable', 'connection closed before the ack')), cancel: () => false }
  }
  return { send, onTopic, wasNotSent: (e: unknown) => typeof e === 'object' && e !== null && notSentErrors.has(e) }
}

function service(script: Behaviour[]) {
  const fake = fakeProducer(script)
  const ingest = new IngestService({
    config,
    checkContract: () => ({ ok: true, version: 1 }),
    checkIdentity: () => [],
    claims: createMemoryStateStores().claims,
    encode: (e) => Buffer.from(e.eventId, 'utf8'), // the "record" is its event id
    send: fake.send,
    wasNotSent: fake.wasNotSent,
  })
  return { ingest, fake }
}

const status = (e: unknown) => (e instanceof CdpError ? e.status : 0)

void t.test('ack lost after the record was written: the retry is produced under the same event id', async (t) => {
  const { ingest, fake } = service(['lost-after-send', 'ack'])
  const first = await ingest.ingest(caller, [SEED_EVENT]).then(() => 0, status)
  t.equal(first, 503, 'the first attempt is answered 503 (outcome unknown)')
  const [r] = await ingest.ingest(caller, [SEED_EVENT])
  t.equal(fake.onTopic.length, 2, 'the retry produced again')
  t.equal(fake.onTopic[0], fake.onTopic[1], 'both records carry one event id')
  t.same(r, { status: 'accepted', event_id: fake.onTopic[0] }, 'the client is given the id the stored fact carries')
  const [again] = await ingest.ingest(caller, [SEED_EVENT])
  t.same(again, { status: 'duplicate', original_event_id: fake.onTopic[0] })
})

void t.test('a produce that certainly did not happen releases the claim: the retry claims afresh', async (t) => {
  const { ingest, fake } = service(['not-sent', 'ack'])
  t.equal(await ingest.ingest(caller, [SEED_EVENT]).then(() => 0, status), 503)
  t.equal(fake.onTopic.length, 0)
  const [r] = await ingest.ingest(caller, [SEED_EVENT])
  t.same(r, { status: 'accepted', event_id: fake.onTopic[0] })
  t.equal(fake.onTopic.length, 1)
})
