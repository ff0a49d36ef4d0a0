import t from 'tap'
import { isCdpError } from '../../../src/errors.js'
import { columnName } from '../../../src/contracts/columns.js'
import { createRegistry, loadContracts } from '../../../src/contracts/registry.js'
import { CATALOG_DIR, contractFile, writeCatalog } from './fixtures/catalog.js'

/** the problem lines of a failed load, or [] when it loaded */
function loadProblems(dir: string): string[] {
  try {
    loadContracts(dir)
    return []
  } catch (err) {
    if (!isCdpError(err)) throw err
    t.equal(err.code, 'config_invalid')
    return (err.details ?? []).map((d) => `${d.pointer.slice(dir.length + 1)} ${d.message}`)
  }
}

void t.test('the checked-in starter catalog loads', async (t) => {
  const registry = loadContracts(CATALOG_DIR)
  const names = registry.all().map((c) => c.name)
  t.ok(names.length >= 8, `has at least 8 event types (${names.join(', ')})`)
  for (const n of ['purchase_completed', 'order_refunded', 'cart_updated', 'product_viewed', 'checkout_started',
    'profile_updated', 'subscription_started', 'subscription_cancelled', 'loyalty_points_earned']) {
    t.ok(names.includes(n), n)
  }
  const purchase = registry.get('any-tenant', 'purchase_completed')
  t.ok(purchase, 'shared contracts serve every tenant')
  t.match(purchase?.properties, {
    order_id: { type: 'string', required: true },
    amount: { type: 'number', required: true },
    currency: { required: true },
    store_id: { type: 'string', required: false, segmentable: true },
  })
  const profile = registry.get('any-tenant', 'profile_updated')
  t.equal(profile?.properties.first_name?.pii, true)
  t.equal(profile?.properties.last_name?.pii, true)
  t.equal(registry.get('any-tenant', 'no_such_event'), undefined)
  t.ok(Object.isFrozen(purchase) && Object.isFrozen(purchase?.properties.amount), 'contracts are frozen')
})

void t.test('segmentable columns: typed, de-duplicated, named safely', async (t) => {
  const cols = loadContracts(CATALOG_DIR).segmentableColumns()
  const byProperty = new Map(cols.map((c) => [c.property, c]))
  t.match(byProperty.get('store_id'), { column: 'p_store_id', clickhouseType: 'Nullable(String)' })
  t.same(byProperty.get('store_id')?.eventTypes, ['order_refunded', 'purchase_completed'], 'one column for both contracts')
  t.equal(cols.filter((c) => c.property === 'store_id').length, 1)
  t.equal(byProperty.get('amount')?.clickhouseType, 'Nullable(Float64)')
  t.equal(byProperty.get('balance')?.clickhouseType, 'Nullable(Int64)')
  t.equal(byProperty.get('marketing_opt_in')?.clickhouseType, 'Nullable(Bool)')
  t.equal(byProperty.get('trial_ends_at')?.clickhouseType, "Nullable(DateTime64(3, 'UTC'))")
  t.equal(byProperty.get('loyalty_tier')?.clickhouseType, 'LowCardinality(Nullable(String))')
  t.equal(byProperty.get('product_ids')?.clickhouseType, 'Array(String)')
  t.equal(byProperty.get('topics')?.clickhouseType, 'Array(LowCardinality(String))')
  for (const c of cols) t.match(c.column, /^p_[a-z0-9_]+$/, c.column)
})

void t.test('column names are p_<snake_case>', async (t) => {
  t.equal(columnName('store_id'), 'p_store_id')
  t.equal(columnName('storeId'), 'p_store_id')
  t.equal(columnName('HTTPStatus'), 'p_http_status')
  t.equal(columnName('amount2'), 'p_amount2')
})

void t.test('every array item type maps to a ClickHouse element type', async (t) => {
  const types = ['string', 'integer', 'number', 'boolean', 'timestamp'] as const
  const registry = createRegistry([contractFile({
    properties: Object.fromEntries(types.map((ty) => [`list_${ty}`, { type: 'array', items: { type: ty }, segmentable: true }])),
  })])
  t.same(registry.segmentableColumns().map((c) => c.clickhouseType),
    ['Array(Bool)', 'Array(Int64)', 'Array(Float64)', 'Array(String)', "Array(DateTime64(3, 'UTC'))"])
})

void t.test('a tenant-specific contract takes precedence over the shared one', async (t) => {
  const shared = contractFile()
  const acme = contractFile({
    tenants: ['acme', 'beta'],
    version: 3,
    properties: { thing_id: { type: 'string', required: true }, acme_only: { type: 'boolean' } },
  })
  const gamma = contractFile({ name: 'gamma_thing', tenants: ['gamma'] })
  const registry = loadContracts(writeCatalog(t, [shared, acme, gamma]))
  t.equal(registry.get('acme', 'thing_happened')?.version, 3)
  t.equal(registry.get('beta', 'thing_happened')?.version, 3)
  t.equal(registry.get('other', 'thing_happened')?.version, 1)
  t.ok(registry.get('gamma', 'gamma_thing'))
  t.equal(registry.get('acme', 'gamma_thing'), undefined, 'a tenant-only contract is not registered for others')
  t.same(registry.all().map((c) => `${c.name}:${c.tenants?.join(',') ?? '*'}`),
    ['gamma_thing:gamma', 'thing_happened:*', 'thing_happened:acme,beta'])
})

void t.test('every problem in every file is listed with file and pointer', async (t) => {
  const dir = writeCatalog(t, {
    'bad.json': {
      name: 'Bad-Name', version: 0, owner: 'o', unknownProperties: 'maybe', extra: true,
      properties: {
        amount: { type: 'number', requried: true, maxLength: 3 },
        currency: { type: 'enum' },
        weird: { type: 'decimal' },
        '1st': { type: 'string' },
        tags: { type: 'array', items: { type: 'array' } },
        range: { type: 'integer', minimum: 5, maximum: 1 },
      },
    },
    'broken.json': '{ not json',
    'range.json': contractFile({ name: 'range', properties: { n: { type: 'number', minimum: 2, maximum: 1 } } }),
    'misnamed.json': contractFile(),
    'README.md': 'not a contract, ignored',
  })
  const problems = loadProblems(dir)
  const expected = [
    'bad.json#/description is required',
    'bad.json#/extra is not a known field',
    'bad.json#/name must match pattern',
    'bad.json#/version must be >= 1',
    'bad.json#/unknownProperties must be one of "reject", "allow"',
    'bad.json#/properties/amount/requried is not a field of type "number"',
    'bad.json#/properties/amount/maxLength is not a field of type "number"',
    'bad.json#/properties/currency/values is required',
    'bad.json#/properties/weird/type must be one of string, integer, number, boolean, timestamp, enum, array (got "decimal")',
    'bad.json#/properties/1st is not a valid property name',
    'bad.json#/properties/tags/items/type must be one of string, integer, number, boolean, timestamp, enum (got "array")',
    'broken.json# not valid JSON',
    'range.json#/properties/n/minimum minimum 2 is greater than maximum 1',
    'misnamed.json#/name file must be named thing_happened.json',
  ]
  for (const e of expected) t.ok(problems.some((p) => p.startsWith(e)), e)
  t.equal(problems.length, expected.length, problems.join('\n'))
})

void t.test('the error message lists every problem too', async (t) => {
  const dir = writeCatalog(t, { 'a.json': '[]', 'b.json': '{' })
  t.throws(() => loadContracts(dir), { code: 'config_invalid', message: /a\.json.*\n.*b\.json/ })
})

void t.test('a missing directory fails loudly', async (t) => {
  t.throws(() => loadContracts('/nonexistent/contracts'), { code: 'config_invalid', message: /not found/ })
})

void t.test('one contract per event type and tenant', async (t) => {
  const dir = writeCatalog(t, {
    'thing_happened.json': contractFile(),
    'thing_happened.copy.json': contractFile({ tenants: ['acme'] }),
    'thing_happened.again.json': contractFile({ tenants: ['beta', 'acme'] }),
  })
  const problems = loadProblems(dir)
  t.equal(problems.length, 1, problems.join('\n'))
  t.match(problems[0], /tenants\/0 tenant acme already has a thing_happened contract/)
  const shared = writeCatalog(t, { 'thing_happened.json': contractFile(), 'thing_happened.x.json': contractFile() })
  t.match(loadProblems(shared), [/file must be named/], 'a shared contract lives in <name>.json')
})

void t.test('a segmentable property must have one type across contracts', async (t) => {
  const dir = writeCatalog(t, [
    contractFile({ name: 'a_happened', properties: { store_id: { type: 'string', segmentable: true } } }),
    contractFile({ name: 'b_happened', properties: { store_id: { type: 'integer', segmentable: true } } }),
    contractFile({ name: 'c_happened', properties: { store_id: { type: 'integer' } } }),
  ])
  const problems = loadProblems(dir)
  t.equal(problems.length, 1, 'a non-segmentable use of the name does not matter')
  t.match(problems[0], /b_happened\.json#\/properties\/store_id segmentable property "store_id" is Nullable\(Int64\) here but Nullable\(String\) in a_happened/)
})

void t.test('an enum and a string of the same name are different column types', async (t) => {
  const dir = writeCatalog(t, [
    contractFile({ name: 'a_happened', properties: { tier: { type: 'enum', values: ['x'], segmentable: true } } }),
    contractFile({ name: 'b_happened', properties: { tier: { type: 'string', segmentable: true } } }),
  ])
  t.match(loadProblems(dir), [/tier/])
})

void t.test('two property names must not share a column', async (t) => {
  const dir = writeCatalog(t, [
    contractFile({ name: 'a_happened', properties: { store_id: { type: 'string', segmentable: true } } }),
    contractFile({ name: 'b_happened', properties: { storeId: { type: 'string', segmentable: true } } }),
  ])
  t.match(loadProblems(dir), [/"storeId" and "store_id" both map to column p_store_id/])
})
