import t, { type Test } from 'tap'
import { COMPAT_CODES, checkCompatibility, formatCompatProblem, type CompatProblem } from '../../../src/contracts/compat.js'
import { loadContracts } from '../../../src/contracts/registry.js'
import { readReleased } from '../../../src/contracts/snapshot.js'
import type { Contract } from '../../../src/contracts/types.js'
import { CATALOG_DIR, RELEASED_FILE, checkedInFiles, contractFile, writeCatalog, type ContractFile } from './fixtures/catalog.js'

const released = readReleased(RELEASED_FILE).contracts as Contract[]
const seen = new Set<string>()

/** The checked-in catalog with `edit` applied, loaded from a temp dir like the real one. */
function variant(t: Test, edit: (c: (name: string) => ContractFile, files: Map<string, ContractFile>) => void): readonly Contract[] {
  const files = checkedInFiles()
  const get = (name: string): ContractFile => {
    const f = files.get(`${name}.json`)
    if (f === undefined) throw new Error(`no ${name}`)
    return f
  }
  edit(get, files)
  return loadContracts(writeCatalog(t, files.values())).all()
}

function problems(before: readonly Contract[], after: readonly Contract[]): CompatProblem[] {
  const out = checkCompatibility(before, after)
  for (const p of out) seen.add(p.code)
  return out
}

const summary = (ps: CompatProblem[]): string[] => ps.map((p) => `${p.code} ${p.eventType} (${p.scope}) ${p.pointer}`)

void t.test('the checked-in catalog is compatible with the checked-in released snapshot', async (t) => {
  t.ok(released, 'the snapshot reads')
  t.same(problems(released, loadContracts(CATALOG_DIR).all()), [])
})

void t.test('incompatible changes are refused', async (t) => {
  const cases: [string, (c: (name: string) => ContractFile) => void, string[]][] = [
    ['a new required property', (c) => {
      c('purchase_completed').properties.loyalty_id = { type: 'string', required: true }
    }, ['required_added purchase_completed (shared) /properties/loyalty_id']],
    ['an optional property made required', (c) => {
      Object.assign(c('purchase_completed').properties.store_id ?? {}, { required: true })
    }, ['became_required purchase_completed (shared) /properties/store_id/required']],
    ['a changed type', (c) => {
      c('purchase_completed').properties.amount = { type: 'string', required: true }
    }, ['type_changed purchase_completed (shared) /properties/amount/type']],
    ['a changed array item type', (c) => {
      (c('newsletter_subscribed').properties.topics as { items: unknown }).items = { type: 'string' }
    }, ['type_changed newsletter_subscribed (shared) /properties/topics/items/type']],
    ['a removed enum value', (c) => {
      const cur = c('purchase_completed').properties.currency as { values: string[] }
      cur.values = cur.values.filter((v) => v !== 'AED' && v !== 'ZAR')
    }, ['enum_value_removed purchase_completed (shared) /properties/currency/values']],
    ['a removed enum value of array items', (c) => {
      const items = (c('newsletter_subscribed').properties.topics as { items: { values: string[] } }).items
      items.values = items.values.filter((v) => v !== 'tips')
    }, ['enum_value_removed newsletter_subscribed (shared) /properties/topics/items/values']],
    ['a lowered maxLength', (c) => {
      Object.assign(c('purchase_completed').properties.order_id ?? {}, { maxLength: 64 })
    }, ['constraint_tightened purchase_completed (shared) /properties/order_id/maxLength']],
    ['a maximum where there was none (dropping a maxLength is fine)', (c) => {
      Object.assign(c('purchase_completed').properties.order_id ?? {}, { maxLength: undefined })
      Object.assign(c('cart_updated').properties.cart_value ?? {}, { maximum: 1e6 })
    }, ['constraint_tightened cart_updated (shared) /properties/cart_value/maximum']],
    ['a raised minimum, a lowered maximum and maxItems', (c) => {
      Object.assign(c('cart_updated').properties.quantity ?? {}, { minimum: 1, maximum: 100 })
      Object.assign(c('purchase_completed').properties.product_ids ?? {}, { maxItems: 100 })
    }, [
      'constraint_tightened cart_updated (shared) /properties/quantity/minimum',
      'constraint_tightened cart_updated (shared) /properties/quantity/maximum',
      'constraint_tightened purchase_completed (shared) /properties/product_ids/maxItems',
    ]],
    ['a removed property while unknown properties are rejected', (c) => {
      delete c('purchase_completed').properties.coupon_code
    }, ['property_removed purchase_completed (shared) /properties/coupon_code']],
    ['unknown properties no longer allowed', (c) => {
      c('product_viewed').unknownProperties = 'reject'
    }, ['unknown_properties_tightened product_viewed (shared) /unknownProperties']],
  ]
  for (const [what, edit, expected] of cases) {
    const current = variant(t, (c) => {
      edit(c)
      // bumped, so each case shows only the problem it is about
      for (const name of ['purchase_completed', 'checkout_started', 'newsletter_subscribed', 'cart_updated', 'product_viewed']) c(name).version = 2
    })
    t.same(summary(problems(released, current)), expected, what)
  }
})

void t.test('a removed contract is refused', async (t) => {
  const current = variant(t, (_c, files) => { files.delete('email_opened.json') })
  const ps = problems(released, current)
  t.same(summary(ps), ['contract_removed email_opened (shared) '])
  t.match(formatCompatProblem(ps[0] as CompatProblem), /^email_opened \(shared\): \[contract_removed\] contract removed/)
})

void t.test('the version: bumped on any non-documentation change, never lowered', async (t) => {
  const unbumped = variant(t, (c) => {
    c('purchase_completed').properties.gift_wrap = { type: 'boolean' }
  })
  const ps = problems(released, unbumped)
  t.same(summary(ps), ['version_not_bumped purchase_completed (shared) /version'])
  t.match(ps[0]?.message, /set version to 2/)

  const flagOnly = variant(t, (c) => { Object.assign(c('profile_updated').properties.postal_code ?? {}, { pii: false }) })
  t.same(summary(problems(released, flagOnly)), ['version_not_bumped profile_updated (shared) /version'], 'pii counts as a change')

  t.same(problems(released, variant(t, () => undefined)), [], 'unchanged at the same version is fine')
  const bumpedTwice = variant(t, (c) => { c('cart_updated').version = 7 })
  t.same(problems(bumpedTwice, loadContracts(CATALOG_DIR).all()).map((p) => p.code), ['version_decreased'])
})

void t.test('compatible changes are accepted', async (t) => {
  const current = variant(t, (c) => {
    // new optional property
    c('purchase_completed').properties.gift_wrap = { type: 'boolean' }
    c('purchase_completed').version = 2
    // new enum value, loosened limits
    const cur = c('order_refunded').properties.currency as { values: string[] }
    cur.values = [...cur.values, 'THB']
    Object.assign(c('order_refunded').properties.refund_id ?? {}, { maxLength: 512 })
    c('order_refunded').version = 2
    // required -> optional, minimum removed, maxItems raised, segmentable toggled
    Object.assign(c('checkout_started').properties.cart_value ?? {}, { required: false, minimum: undefined })
    Object.assign(c('checkout_started').properties.product_ids ?? {}, { maxItems: 1000, segmentable: false })
    c('checkout_started').version = 5
    // a property removed where unknown properties are allowed
    delete c('product_viewed').properties.price
    c('product_viewed').version = 2
    // reject -> allow
    c('cart_updated').unknownProperties = 'allow'
    c('cart_updated').version = 2
    // documentation only: no version bump needed
    c('email_opened').description = 'Reworded.'
    c('email_opened').owner = 'another-team'
    Object.assign(c('email_opened').properties.campaign_id ?? {}, { description: 'Reworded too.' })
  })
  t.same(summary(problems(released, current)), [])
})

void t.test('reordering properties or enum values is not a change', async (t) => {
  const current = variant(t, (c) => {
    const p = c('loyalty_points_earned')
    p.properties = Object.fromEntries(Object.entries(p.properties).reverse())
    const reason = p.properties.reason as { values: string[] }
    reason.values = [...reason.values].reverse()
  })
  t.same(problems(released, current), [])
})

void t.test('a new contract is accepted', async (t) => {
  const current = variant(t, (_c, files) => { files.set('thing_happened.json', contractFile()) })
  t.same(problems(released, current), [])
})

void t.test('tenants: each tenant is judged by the contract it resolves to', async (t) => {
  const shared = contractFile()
  const base = loadContracts(writeCatalog(t, [shared])).all()

  await t.test('a compatible override for one tenant', async (t) => {
    const override = contractFile({ tenants: ['acme'], properties: { ...shared.properties, extra: { type: 'integer' } } })
    t.same(problems(base, loadContracts(writeCatalog(t, [shared, override])).all()), [])
  })
  await t.test('an override that adds a required property breaks that tenant only', async (t) => {
    const override = contractFile({ tenants: ['acme'], properties: { ...shared.properties, extra: { type: 'integer', required: true } } })
    t.same(summary(problems(base, loadContracts(writeCatalog(t, [shared, override])).all())),
      ['required_added thing_happened (tenant acme) /properties/extra'], 'no version problem: a different contract')
  })
  await t.test('a shared contract narrowed to some tenants', async (t) => {
    const narrowed = contractFile({ tenants: ['acme'] })
    const ps = problems(base, loadContracts(writeCatalog(t, [narrowed])).all())
    t.same(summary(ps), ['contract_removed thing_happened (shared) '])
  })
  await t.test('a tenant dropped from a tenant-specific contract', async (t) => {
    const before = loadContracts(writeCatalog(t, [contractFile({ tenants: ['acme', 'beta'] })])).all()
    const after = loadContracts(writeCatalog(t, [contractFile({ tenants: ['acme'], version: 2 })])).all()
    const ps = problems(before, after)
    t.same(summary(ps), ['contract_removed thing_happened (tenant beta) '])
    t.match(ps[0]?.message, /no contract serves tenant beta/)
  })
  await t.test('the same problem for several tenants is reported once, naming them', async (t) => {
    const before = loadContracts(writeCatalog(t, [contractFile({ tenants: ['acme', 'beta'] })])).all()
    const after = loadContracts(writeCatalog(t, [contractFile({
      tenants: ['acme', 'beta'], version: 2, properties: { thing_id: { type: 'integer', required: true } },
    })])).all()
    t.same(summary(problems(before, after)), [
      'type_changed thing_happened (tenant acme, beta) /properties/thing_id/type',
      'property_removed thing_happened (tenant acme, beta) /properties/kind',
    ])
  })
})

void t.test('every compatibility code is exercised by these tests', async (t) => {
  t.same([...seen].sort(), [...COMPAT_CODES].sort())
})
