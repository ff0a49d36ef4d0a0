/**
 * `cdp erase` against the running service's consumer (which owns ClickHouse and runs the request):
 * it prints each step and the receipt, exits 0, and the person is gone; `cdp suppressions lift`
 * then lets their identity in again. Usage errors exit 2 without storing anything.
 */
import t from 'tap'
import { erase, suppressions } from '../../src/cli/commands/erase.js'
import { createPrivacyStore } from '../../src/state/privacy-store.js'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'

void t.test('cdp erase: progress, receipt, person gone; cdp suppressions lift lets them in again', async (t) => {
  const api = await startApi(t, { privacy: { erasurePollMs: 100 } })
  const cfg = api.config
  const db = cfg.clickhouse.database
  const p = await startPipeline(t, cfg)
  const auth = { authorization: `Bearer ${await api.key('acme')}` }
  const event = (id: string) => ({
    source: 'web', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
    identity: { deviceKey: 'kiosk-cli-1' }, properties: { order_id: `o-${id}`, amount: 5, currency: 'EUR' },
  })
  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload: event('c-1') })).statusCode, 202)
  await p.until(`SELECT 1 FROM ${db}.events WHERE device_key = 'kiosk-cli-1'`, (r) => r.length === 1)

  const usage: string[] = []
  t.equal(await erase(cfg, ['--tenant', 'acme', '--email', 'a@example.com', '--phone', '+12025550100'], (l) => usage.push(l)), 2)
  t.match(usage[0], /^usage: cdp erase/)
  const store = createPrivacyStore(cfg)
  t.teardown(() => store.close())
  t.same(await store.listErasures(), [], 'a usage error stores nothing')

  const out: string[] = []
  t.equal(await erase(cfg, ['--tenant', 'acme', '--device-key', ' kiosk-cli-1 '], (l) => out.push(l), 50), 0)
  t.match(out[0], /^erase: era_[a-z0-9]+ pending for tenant acme; the identity is suppressed from now on$/)
  t.ok(out.some((l) => /running: ClickHouse/.test(l)), 'progress names the steps')
  const receipt = JSON.parse(out.slice(out.findIndex((l) => l.startsWith('{'))).join('\n')) as { status: string; receipt: { clickhouse: { events: number } } }
  t.equal(receipt.status, 'completed')
  t.equal(receipt.receipt.clickhouse.events, 1)
  t.same(await p.rows(`SELECT 1 FROM ${db}.events WHERE device_key = 'kiosk-cli-1'`), [])
  const [done] = await store.listErasures()
  t.same(Object.keys(done!.identity).sort(), ['hash', 'type'], 'the finished request keeps no identity value')

  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload: event('c-2') })).statusCode, 409)
  const lifted: string[] = []
  t.equal(await suppressions(cfg, ['lift', '--tenant', 'acme', done!.id], (l) => lifted.push(l)), 0)
  t.same(lifted, ['lifted 1 suppression of tenant acme'])
  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload: event('c-2') })).statusCode, 202, 'accepted again once lifted')
})
