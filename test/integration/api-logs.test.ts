/**
 * Logs carry a request id and never a key secret or a raw email/phone, even at debug level with
 * per-request logging on, for accepted, invalid and unauthorized requests.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { startApi } from '../helpers/api.js'
import { REDACT_PATHS } from '../../src/observability/logger.js'

void t.test('no secrets or raw PII in logs', async (t) => {
  let text = ''
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { text += chunk.toString(); cb() } })
  const logger = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink)
  const api = await startApi(t, { logLevel: 'debug' }, undefined, logger)
  const key = await api.key('acme')
  const email = 'Very.Private@Example.com'
  const phone = '+1 415 555 0199'
  const body = {
    source: 'brand.crm', externalEventId: 'log-1', eventType: 'profile_updated',
    identity: { email, phone }, properties: {},
  }
  const ok = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}`, 'x-request-id': 'req-abc-123' }, payload: body })
  t.ok([200, 202, 422].includes(ok.statusCode), ok.body)
  t.equal(ok.headers['x-request-id'], 'req-abc-123', 'the request id is echoed')
  await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` }, payload: { ...body, externalEventId: 'log-2', identity: { email: 'not-an-email-but-private', phone: '12' } } })
  await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key.slice(0, -3)}zzz` }, payload: body })
  await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: '{"broken": ' })
  t.ok(text.length > 0, 'something was logged')
  t.match(text, /req-abc-123/, 'log lines carry the request id')
  const secret = key.split('_')[2]!
  for (const needle of [secret, key, email, email.toLowerCase(), '415 555 0199', '+14155550199', 'not-an-email-but-private']) {
    t.notOk(text.includes(needle), `logs do not contain ${needle.slice(0, 6)}…`)
  }
})
