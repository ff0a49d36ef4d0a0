import t from 'tap'
import type { ErrorDetail } from '../../../src/errors.js'
import { createRegistry, loadContracts } from '../../../src/contracts/registry.js'
import type { Contract } from '../../../src/contracts/types.js'
import { VALIDATION_CODES, timestampProblem, validateProperties } from '../../../src/contracts/validate.js'
import { CATALOG_DIR, contractFile } from './fixtures/catalog.js'

const opts = { maxStringLength: 2048 }
const catalog = loadContracts(CATALOG_DIR)
const seen = new Set<string>()

function check(contract: Contract, properties: unknown, o: { maxStringLength: number; pointer?: string } = opts): ErrorDetail[] {
  const errors = validateProperties(contract, properties, o)
  for (const e of errors) seen.add(e.code)
  return errors
}

function contract(properties: Record<string, Record<string, unknown>>, unknownProperties: 'reject' | 'allow' = 'reject'): Contract {
  const c = createRegistry([contractFile({ properties, unknownProperties })]).all()[0]
  if (c === undefined) throw new Error('no contract')
  return c
}

const purchase = catalog.get('tenant-a', 'purchase_completed') as Contract

void t.test('the seed example validates', async (t) => {
  t.same(check(purchase, { order_id: 'order_42', amount: 120.50, currency: 'USD', store_id: 'store_42' }), [])
  t.same(check(purchase, { order_id: 'order_42', amount: 0, currency: 'EUR' }), [], 'optional store_id may be omitted')
  t.same(check(purchase, { order_id: 'order_42', amount: 1, currency: 'EUR', store_id: null }), [], 'null means absent for optional')
})

void t.test('missing properties: every required property is reported', async (t) => {
  t.same(check(purchase, undefined), [
    { pointer: '/properties/order_id', code: 'required', message: '"order_id" is required' },
    { pointer: '/properties/amount', code: 'required', message: '"amount" is required' },
    { pointer: '/properties/currency', code: 'required', message: '"currency" is required' },
  ])
  t.same(check(purchase, {}).map((e) => e.pointer), ['/properties/order_id', '/properties/amount', '/properties/currency'])
  t.match(check(purchase, { order_id: null, amount: 1, currency: 'USD' }), [
    { pointer: '/properties/order_id', code: 'required', message: /must not be null/ },
  ])
})

void t.test('properties that are not an object', async (t) => {
  for (const bad of [null, [], 'x', 42]) {
    t.match(check(purchase, bad), [{ pointer: '/properties', code: 'type', message: /must be an object/ }], JSON.stringify(bad))
  }
})

void t.test('all problems are reported, in declaration order, then unknown properties', async (t) => {
  const errors = check(purchase, {
    surprise: 1,
    amount: -5,
    currency: 'usd',
    store_id: 42,
    item_count: 1.5,
    product_ids: ['p1', 7],
  })
  t.same(errors.map((e) => `${e.code} ${e.pointer}`), [
    'required /properties/order_id',
    'minimum /properties/amount',
    'enum /properties/currency',
    'type /properties/store_id',
    'type /properties/item_count',
    'type /properties/product_ids/1',
    'unknown_property /properties/surprise',
  ])
  t.match(errors[1]?.message, '"amount" must be >= 0')
  t.match(errors[2]?.message, /"currency" must be one of: USD, EUR, .* \(got "usd"\)/)
  t.match(errors[3]?.message, '"store_id" must be a string (got number)')
  t.match(errors[4]?.message, '"item_count" must be an integer (got 1.5)')
  t.match(errors[5]?.message, '"product_ids"[1] must be a string (got number)')
  t.match(errors[6]?.message, '"surprise" is not a property of purchase_completed v1')
})

void t.test('type checks per property type', async (t) => {
  const c = contract({
    s: { type: 'string' }, i: { type: 'integer' }, n: { type: 'number' }, b: { type: 'boolean' },
    ts: { type: 'timestamp' }, e: { type: 'enum', values: ['x'] }, a: { type: 'array', items: { type: 'integer' } },
  })
  t.same(check(c, { s: 's', i: -3, n: 1.25, b: false, ts: '2026-05-20T12:45:00Z', e: 'x', a: [1, 2] }), [])
  const errors = check(c, { s: 1, i: '1', n: '1.5', b: 'true', ts: 1716200000, e: 1, a: 'x' })
  t.same(errors.map((e) => `${e.code} ${e.pointer}`), [
    'type /properties/s', 'type /properties/i', 'type /properties/n', 'type /properties/b',
    'type /properties/ts', 'type /properties/e', 'type /properties/a',
  ])
  t.match(check(c, { a: [1, null] }), [{ pointer: '/properties/a/1', code: 'type', message: /\(got null\)/ }], 'no null array items')
  t.match(check(c, { i: 2 ** 60 }), [{ code: 'type', message: /between/ }], 'integers beyond 2^53 have lost digits')
  t.match(check(c, { n: Number.POSITIVE_INFINITY }), [{ code: 'type' }])
  t.match(check(c, { i: Number.NaN }), [{ code: 'type' }])
})

void t.test('string length: the contract maxLength and the service-wide cap, in code points', async (t) => {
  const c = contract({ short: { type: 'string', maxLength: 5 }, long: { type: 'string' } })
  t.same(check(c, { short: '12345' }), [])
  t.match(check(c, { short: '123456' }), [{ pointer: '/properties/short', code: 'max_length', message: '"short" must be at most 5 characters' }])
  t.same(check(c, { short: '😀😀😀😀😀' }), [], 'five emoji are five characters, although ten UTF-16 units')
  t.match(check(c, { long: 'x'.repeat(11) }, { maxStringLength: 10 }), [{ code: 'max_length', message: /at most 10/ }])
  t.match(check(c, { short: 'x'.repeat(4) }, { maxStringLength: 3 }), [{ code: 'max_length', message: /at most 3/ }],
    'the smaller limit wins')
  const items = contract({ tags: { type: 'array', items: { type: 'string', maxLength: 2 } } })
  t.match(check(items, { tags: ['ab', 'abc'] }), [{ pointer: '/properties/tags/1', code: 'max_length' }])
})

void t.test('numeric bounds', async (t) => {
  const c = contract({
    qty: { type: 'integer', minimum: 1, maximum: 10 },
    share: { type: 'number', minimum: 0, maximum: 1 },
    counts: { type: 'array', items: { type: 'integer', maximum: 3 } },
  })
  t.same(check(c, { qty: 1, share: 1, counts: [3] }), [], 'bounds are inclusive')
  t.same(check(c, { qty: 0, share: 1.01, counts: [4] }).map((e) => `${e.code} ${e.pointer} ${e.message}`), [
    'minimum /properties/qty "qty" must be >= 1',
    'maximum /properties/share "share" must be <= 1',
    'maximum /properties/counts/0 "counts"[0] must be <= 3',
  ])
})

void t.test('enums, also as array items', async (t) => {
  const c = contract({ tier: { type: 'enum', values: ['gold', 'silver'] }, topics: { type: 'array', items: { type: 'enum', values: ['a', 'b'] } } })
  t.same(check(c, { tier: 'gold', topics: ['a', 'b', 'a'] }), [])
  t.match(check(c, { tier: 'Gold', topics: ['a', 'c'] }), [
    { pointer: '/properties/tier', code: 'enum', message: '"tier" must be one of: gold, silver (got "Gold")' },
    { pointer: '/properties/topics/1', code: 'enum' },
  ])
})

void t.test('array length', async (t) => {
  const c = contract({ ids: { type: 'array', items: { type: 'string' }, maxItems: 2 } })
  t.same(check(c, { ids: [] }), [])
  t.same(check(c, { ids: [1, 2, 3] }), [
    { pointer: '/properties/ids', code: 'max_items', message: '"ids" must have at most 2 items (got 3)' },
  ], 'an oversized array is one problem, not one per bad item')
})

void t.test('timestamps: ISO 8601 with seconds and an offset', async (t) => {
  const c = contract({ at: { type: 'timestamp' } })
  for (const ok of ['2026-05-20T12:45:00Z', '2026-05-20T12:45:00.123+02:00', '2026-05-20t12:45:00.123456789z',
    '2024-02-29T00:00:00-05:30', '1900-01-01T00:00:00Z', '2299-12-31T23:59:59Z']) {
    t.same(check(c, { at: ok }), [], ok)
  }
  const bad: [string, RegExp][] = [
    ['2026-05-20T12:45:00', /UTC offset/],
    ['2026-05-20 12:45:00Z', /ISO 8601/],
    ['2026-05-20T12:45Z', /with seconds/],
    ['20260520T124500Z', /ISO 8601/],
    ['2023-02-29T00:00:00Z', /calendar date/],
    ['2026-13-01T00:00:00Z', /calendar date/],
    ['2026-04-31T00:00:00Z', /calendar date/],
    ['2026-05-20T24:00:00Z', /time of day/],
    ['2026-05-20T12:60:00Z', /time of day/],
    ['2026-05-20T12:00:00+24:00', /offset/],
    ['1899-12-31T23:59:59Z', /between 1900 and 2299/],
    ['yesterday', /ISO 8601/],
  ]
  for (const [value, why] of bad) {
    t.match(check(c, { at: value }), [{ pointer: '/properties/at', code: 'invalid_timestamp', message: why }], value)
  }
  t.equal(timestampProblem('2026-05-20T12:45:00Z'), undefined)
})

void t.test('unknown properties: rejected or kept as-is by policy', async (t) => {
  const strict = contract({ a: { type: 'string' } }, 'reject')
  const open = contract({ a: { type: 'string' } }, 'allow')
  t.same(check(open, { a: 'x', extra: { nested: [1] }, other: null }), [])
  t.match(check(open, { a: 1, extra: true }), [{ pointer: '/properties/a', code: 'type' }], 'declared ones are still checked')
  t.same(check(strict, { a: 'x', 'we/ird~key': 1, b: 2 }).map((e) => e.pointer),
    ['/properties/we~1ird~0key', '/properties/b'], 'pointers escape ~ and / per RFC 6901')
})

void t.test('a caller nesting properties (batch items) sets the pointer', async (t) => {
  t.match(check(purchase, { order_id: 'o', currency: 'USD' }, { maxStringLength: 100, pointer: '/items/3/properties' }),
    [{ pointer: '/items/3/properties/amount', code: 'required' }])
})

void t.test('declared names that exist on Object.prototype are looked up as own properties', async (t) => {
  const c = contract({ constructor: { type: 'string', required: true }, toString: { type: 'string' } })
  t.match(check(c, {}), [{ pointer: '/properties/constructor', code: 'required' }])
  t.same(check(c, { constructor: 'x' }), [])
})

void t.test('a contract not built by the registry is compiled on first use', async (t) => {
  const handMade: Contract = {
    name: 'x', version: 1, owner: 'o', description: 'd', unknownProperties: 'reject',
    properties: { n: { type: 'integer', required: true, segmentable: false, pii: false } },
  }
  t.match(check(handMade, { n: 'one' }), [{ code: 'type' }])
  t.same(check(handMade, { n: 1 }), [])
})

void t.test('every validation code is exercised by these tests', async (t) => {
  t.same([...seen].sort(), [...VALIDATION_CODES].sort())
})
