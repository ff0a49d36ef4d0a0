/**
 * The resolve step over a fake identity step: one call per batch with the events in order, each
 * fact paired with the answer at its index, and the identity step's failures passed on untouched
 * (the runner retries them without committing).
 */
import t from 'tap'
import { CdpError } from '../../../src/errors.js'
import { resolveStep } from '../../../src/pipeline/resolve-step.js'
import type { IdentityResolution, IdentityStep } from '../../../src/pipeline/deps.js'
import type { CdpEvent } from '../../../src/avro/event.js'
import { event, unique } from '../../helpers/pipeline-fakes.js'

const a = event({ eventId: 'evt_a', externalEventId: 'txn_a', identity: { externalUserId: 'L-a', email: null, phone: null, deviceKey: null } })
const b = event({ eventId: 'evt_b', externalEventId: 'txn_b', identity: { externalUserId: 'L-b', email: null, phone: null, deviceKey: null } })

const resolution = (e: CdpEvent): IdentityResolution => ({
  profileId: `prof_${e.eventId}`, email: null, phone: null, externalUserId: e.identity.externalUserId, deviceKey: null,
  identities: [], merges: [], aliases: [],
})

/** an identity step that records each call and answers with `answer` */
function identity(answer: (events: CdpEvent[]) => Promise<IdentityResolution[]>): { step: IdentityStep; calls: string[][] } {
  const calls: string[][] = []
  return {
    calls,
    step: {
      async resolveMany(events) { calls.push(events.map((e) => e.eventId)); return answer(events) },
      async forget() { throw new Error('the resolve step never forgets') },
    },
  }
}

void t.test('one call for the batch, in order; each fact carries the resolution at its index', async (t) => {
  const id = identity(async (events) => events.map(resolution))
  const items = [unique(5, a, false), unique(6, b, true)]
  const r = await resolveStep({ identity: id.step })(items)
  t.same(id.calls, [['evt_a', 'evt_b']])
  t.same(r.map((x) => [x.event.eventId, x.resolution.profileId, x.maybeWritten, x.record.offset]), [
    ['evt_a', 'prof_evt_a', false, '5'],
    ['evt_b', 'prof_evt_b', true, '6'],
  ], 'the earlier steps\' fields are kept beside the resolution')
})

void t.test('an empty batch asks the graph nothing', async (t) => {
  const id = identity(async () => { throw new Error('not expected') })
  t.same(await resolveStep({ identity: id.step })([]), [])
  t.same(id.calls, [])
})

void t.test('an answer of the wrong length is an internal error, never a fact paired with another\'s profile', async (t) => {
  const id = identity(async (events) => events.slice(1).map(resolution))
  await t.rejects(resolveStep({ identity: id.step })([unique(5, a, false), unique(6, b, false)]), { code: 'internal_error', retriable: true })
})

void t.test('a graph outage propagates as the retriable CdpError it is', async (t) => {
  const outage = new CdpError('state_store_unavailable', 'graph store closed')
  const id = identity(async () => { throw outage })
  await t.rejects(resolveStep({ identity: id.step })([unique(5, a, false)]), outage)
  t.equal(outage.retriable, true)
})
