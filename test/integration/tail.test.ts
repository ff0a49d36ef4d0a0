/**
 * `cdp tail` against the real stack: started before the events are sent, it prints one line per
 * event of its tenant with the outcome (written, duplicate of the first event id, dead letter
 * with its reason), never another tenant's events and never a raw identity value.
 */
import t from 'tap'
import { createDirectProducer, type DirectEvent } from '../../src/producer/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { tail } from '../../src/cli/commands/tail.js'
import { testConfig } from '../helpers/config.js'
import { startService } from '../helpers/service.js'
import { waitFor } from '../helpers/process.js'

void t.test('tail --max 3: written, duplicate and dead letter lines for the tenant, masked, other tenants left out', async (t) => {
  // Redis state: the tail opens the store next to the service in this one process
  const cfg = testConfig(t, { state: { backend: 'redis' } })
  const svc = await startService(t, cfg)
  const lines: string[] = []
  const running = tail(cfg, ['--tenant', 'acme', '--max', '3', '--timeout', '90'], (l) => { lines.push(l) })
  await waitFor('tail ready', async () => (lines.some((l) => l.startsWith('tail: following')) ? true : undefined))

  const key = await svc.key('acme', ['events:write'])
  const otherKey = await svc.key('globex', ['events:write'])
  const body = {
    source: 'web.shop', externalEventId: 'tl-1', eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
    identity: { email: 'jane.doe@example.com', externalUserId: 'CUST-12345' }, properties: { order_id: 'o-tl-1', amount: 3, currency: 'EUR' },
  }
  const first = await svc.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` }, payload: body })
  t.equal(first.statusCode, 202)
  const firstId = (first.json() as { event_id: string }).event_id
  t.equal((await svc.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${otherKey}` }, payload: body })).statusCode, 202)

  const dp = await createDirectProducer({ brokers: [...cfg.kafka.brokers], topic: cfg.kafka.topic, registryUrl: cfg.schemaRegistry.url, logger: createLogger({ logLevel: 'silent' }) })
  t.teardown(() => dp.close())
  const repeat: DirectEvent = { tenant: 'acme', ...body, identity: { email: 'jane.doe@example.com', externalUserId: 'CUST-12345' } }
  await dp.send(repeat)
  const bad = await dp.send({ ...repeat, externalEventId: 'tl-2', properties: { ...body.properties, order_id: 'o-tl-2', gift_wrap: true } })

  t.equal(await running, 0, 'exits after --max lines')
  const events = lines.filter((l) => !l.startsWith('tail:'))
  t.comment(events.join('\n'))
  t.equal(events.length, 3)
  const of = (id: string, outcome: RegExp) => events.filter((l) => l.split('  ')[3] === id && outcome.test(l))
  t.equal(of('tl-1', new RegExp(`  ${firstId}  .*  written$`)).length, 1, 'the HTTP event: written')
  t.equal(of('tl-1', new RegExp(`  duplicate ${firstId}$`)).length, 1, 'the direct repeat: a duplicate of the first event id')
  t.equal(of('tl-2', new RegExp(`  ${bad.eventId}  .*  dead_letter contract_violation$`)).length, 1, 'the direct record the contract refuses')
  t.ok(events.every((l) => l.split('  ')[1] === 'acme'), 'only the tenant asked for')
  t.ok(events.every((l) => !l.includes('jane.doe') && !l.includes('example.com') && !l.includes('CUST-12345')), 'no raw identity value')
  t.ok(events.some((l) => l.includes('email=j***@e***') && l.includes('externalUserId=***45')), 'identities shown masked')
})
