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
  const body = api.paths['/v1/cdp/events']!.post!.requestBody!.content['application/json']!.schema
  body.properties!.extraField = { type: 'integer', description: 'added by the test' }
  body.required = [...(body.required ?? []), 'extraField']
  const after = renderTypes(api)
  tt.not(after, before)
  tt.match(after, /extraField: number/)
})
