/**
 * The client's committed types must match what the service's OpenAPI document says today: a
 * route schema change without `npx tsx clients/node/scripts/gen-types.ts` fails here.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { GENERATED_PATH, openApiDocument, renderTypes } from '../../../clients/node/scripts/gen-types.js'

void t.test('clients/node/src/generated.ts is what the live OpenAPI document generates', async (tt) => {
  const fresh = renderTypes(await openApiDocument())
  tt.equal(readFileSync(GENERATED_PATH, 'utf8'), fresh, 'stale: run npx tsx clients/node/scripts/gen-types.ts')
})

void t.test('the generator follows the schemas (a changed schema changes the output)', async (tt) => {
  const api = await openApiDocument()
  const before = renderTypes(api)
  const envelope = api.components!.schemas!.EventEnvelope!
  envelope.properties!.extraField = { type: 'integer', description: 'added by the test' }
  envelope.required = [...(envelope.required ?? []), 'extraField']
  const purchase = api.components!.schemas!.Event_purchase_completed!.properties!.properties!
  purchase.properties!.order_id = { type: 'integer', nullable: true }
  const after = renderTypes(api)
  tt.not(after, before)
  tt.match(after, /extraField: number/)
  tt.match(after, /export type PurchaseCompletedEvent = \{[^]*?order_id: number \| null/, 'a contract property follows its schema')
  tt.match(after, /export type KnownEvent = [^\n]*PurchaseCompletedEvent/)
})

void t.test('each registered event type has its own type, discriminated by eventType', async (tt) => {
  const text = renderTypes(await openApiDocument())
  tt.match(text, /export type PurchaseCompletedEvent = \{[^]*?eventType: 'purchase_completed'/)
  tt.match(text, /currency: 'USD' \| 'EUR'/, 'enums become literal unions')
  tt.match(text, /coupon_code\?: string \| null/, 'optional properties may be null')
  tt.match(text, /export type EventType = KnownEvent\['eventType'\]/)
})
