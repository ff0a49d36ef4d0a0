/**
 * Compatibility of the working catalog with the released one, in the spirit of a schema
 * registry's BACKWARD check, with one rule behind every verdict:
 *
 *   every event the released catalog accepted must still be accepted, for every tenant,
 *   with the same column type for each property.
 *
 * Senders keep sending what they sent yesterday, and the consumer re-checks old records from
 * the topic on replay; either would start failing after an incompatible change. So:
 * - refused: a contract removed (or no longer serving a tenant), a new required property, an
 *   optional property made required, any type change (also of array items: the type is the
 *   ClickHouse column's type), a removed enum value, a tightened maxLength/minimum/maximum/
 *   maxItems, unknownProperties 'allow' -> 'reject', and removing a property while unknown
 *   properties are rejected (events that still send it would fail as unknown_property; with
 *   'allow' they pass and removing it is fine).
 * - accepted: a new optional property, a new enum value, loosened limits, a required property
 *   made optional, segmentable/pii flags, documentation, new contracts.
 * - a new optional property is accepted even where unknown properties were allowed, although an
 *   old event might have sent that name with another shape: it is the way ad-hoc properties get
 *   promoted to governed ones, and refusing it would freeze every 'allow' contract.
 *
 * Versions: a contract's version must go up with any change except documentation (description,
 * owner), compatible or not, so a version number names exactly one shape; it must never go down.
 *
 * Tenant overrides are judged by what each tenant gets: for every tenant named in either
 * catalog, and for "all other tenants", the contract that tenant resolves to before and after
 * are compared. So a new tenant-specific contract must be compatible with the shared one it
 * replaces for that tenant.
 */
import { escapePointerToken } from './parse.js'
import type { Contract, Constraints, PropertySpec } from './types.js'

export const COMPAT_CODES = [
  'contract_removed', 'required_added', 'became_required', 'type_changed', 'enum_value_removed',
  'constraint_tightened', 'property_removed', 'unknown_properties_tightened',
  'version_not_bumped', 'version_decreased',
] as const
export type CompatCode = (typeof COMPAT_CODES)[number]

export interface CompatProblem {
  code: CompatCode
  eventType: string
  /** whose events are affected: 'shared' (tenants without their own contract) or 'tenant a, b' */
  scope: string
  /** JSON pointer into the current contract ('' for the whole contract) */
  pointer: string
  message: string
}

export function formatCompatProblem(p: CompatProblem): string {
  return `${p.eventType} (${p.scope})${p.pointer === '' ? '' : ` ${p.pointer}`}: [${p.code}] ${p.message}`
}

type Emit = (code: CompatCode, pointer: string, message: string) => void

interface Index {
  shared: Map<string, Contract>
  perTenant: Map<string, Map<string, Contract>>
}

function index(contracts: readonly Contract[]): Index {
  const idx: Index = { shared: new Map(), perTenant: new Map() }
  for (const c of contracts) {
    if (c.tenants === undefined) { idx.shared.set(c.name, c); continue }
    for (const t of c.tenants) {
      let m = idx.perTenant.get(t)
      if (m === undefined) idx.perTenant.set(t, (m = new Map()))
      m.set(c.name, c)
    }
  }
  return idx
}

/** undefined tenant: any tenant with no contract of its own */
function resolve(idx: Index, tenant: string | undefined, name: string): Contract | undefined {
  return (tenant === undefined ? undefined : idx.perTenant.get(tenant)?.get(name)) ?? idx.shared.get(name)
}

function compareConstraints(r: Constraints, c: Constraints, label: string, at: string, emit: Emit): void {
  if (r.values !== undefined && c.values !== undefined) {
    const kept = new Set(c.values)
    const removed = r.values.filter((v) => !kept.has(v))
    if (removed.length > 0) {
      emit('enum_value_removed', `${at}/values`,
        `${label} no longer allows ${removed.join(', ')}: events using ${removed.length === 1 ? 'it' : 'them'} were accepted before`)
    }
  }
  if (c.maxLength !== undefined && (r.maxLength === undefined || c.maxLength < r.maxLength)) {
    emit('constraint_tightened', `${at}/maxLength`,
      `${label} maxLength ${r.maxLength === undefined ? 'added' : `lowered from ${r.maxLength}`} to ${c.maxLength}: longer values were accepted before`)
  }
  if (c.minimum !== undefined && (r.minimum === undefined || c.minimum > r.minimum)) {
    emit('constraint_tightened', `${at}/minimum`,
      `${label} minimum ${r.minimum === undefined ? 'added' : `raised from ${r.minimum}`} to ${c.minimum}: smaller values were accepted before`)
  }
  if (c.maximum !== undefined && (r.maximum === undefined || c.maximum < r.maximum)) {
    emit('constraint_tightened', `${at}/maximum`,
      `${label} maximum ${r.maximum === undefined ? 'added' : `lowered from ${r.maximum}`} to ${c.maximum}: larger values were accepted before`)
  }
}

function compareProperty(name: string, r: PropertySpec, c: PropertySpec, emit: Emit): void {
  const at = `/properties/${escapePointerToken(name)}`
  const label = `"${name}"`
  if (c.required && !r.required) {
    emit('became_required', `${at}/required`, `${label} became required: events that omit it were accepted before`)
  }
  if (r.type !== c.type) {
    emit('type_changed', `${at}/type`,
      `${label} changed type from ${r.type} to ${c.type}: events and stored rows have ${r.type} values; add a new property instead`)
    return
  }
  compareConstraints(r, c, label, at, emit)
  if (r.items !== undefined && c.items !== undefined) {
    if (r.items.type !== c.items.type) {
      emit('type_changed', `${at}/items/type`,
        `${label} items changed type from ${r.items.type} to ${c.items.type}: add a new property instead`)
    } else compareConstraints(r.items, c.items, `${label} items`, `${at}/items`, emit)
  }
  if (c.maxItems !== undefined && (r.maxItems === undefined || c.maxItems < r.maxItems)) {
    emit('constraint_tightened', `${at}/maxItems`,
      `${label} maxItems ${r.maxItems === undefined ? 'added' : `lowered from ${r.maxItems}`} to ${c.maxItems}: longer arrays were accepted before`)
  }
}

function compareContracts(r: Contract, c: Contract, emit: Emit): void {
  if (r.unknownProperties === 'allow' && c.unknownProperties === 'reject') {
    emit('unknown_properties_tightened', '/unknownProperties',
      'unknownProperties changed from allow to reject: events with undeclared properties were accepted before')
  }
  for (const [name, rp] of Object.entries(r.properties)) {
    const cp = c.properties[name]
    if (cp !== undefined) { compareProperty(name, rp, cp, emit); continue }
    if (c.unknownProperties === 'reject') {
      emit('property_removed', `/properties/${escapePointerToken(name)}`,
        `"${name}" was removed while unknown properties are rejected: events that still send it would fail; keep it (optional) or allow unknown properties`)
    }
  }
  for (const [name, cp] of Object.entries(c.properties)) {
    if (cp.required && r.properties[name] === undefined) {
      emit('required_added', `/properties/${escapePointerToken(name)}`,
        `new property "${name}" is required: events valid under v${r.version} do not send it; make it optional`)
    }
  }
}

/** JSON with sorted keys and set-like lists sorted, without documentation fields. */
function shape(c: Contract): string {
  const strip = (v: unknown, key: string | undefined): unknown => {
    if (Array.isArray(v)) {
      const items = v.map((x) => strip(x, undefined))
      return key === 'values' || key === 'tenants' ? [...(items as string[])].sort() : items
    }
    if (v === null || typeof v !== 'object') return v
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) {
      if (k === 'description' || k === 'owner' || k === 'version') continue
      out[k] = strip((v as Record<string, unknown>)[k], k)
    }
    return out
  }
  return JSON.stringify(strip(c, undefined))
}

function compareVersions(r: Contract, c: Contract, emit: Emit): void {
  if (c.version < r.version) {
    emit('version_decreased', '/version', `version went down from ${r.version} to ${c.version}`)
  } else if (c.version === r.version && shape(r) !== shape(c)) {
    emit('version_not_bumped', '/version',
      `changed since release (beyond description/owner) but still version ${c.version}: set version to ${r.version + 1}`)
  }
}

/**
 * Every reason the current catalog cannot replace the released one; [] when it can.
 * Both catalogs must be valid (loaded through the registry or the snapshot reader).
 */
export function checkCompatibility(released: readonly Contract[], current: readonly Contract[]): CompatProblem[] {
  const before = index(released)
  const after = index(current)
  const tenants = [...new Set([...before.perTenant.keys(), ...after.perTenant.keys()])].sort()
  const names = [...new Set(released.map((c) => c.name))].sort()

  // the same (released, current) pair serves many tenants; compare it once and name them all
  const pairs = new Map<Contract, Map<Contract | undefined, (string | undefined)[]>>()
  for (const name of names) {
    for (const tenant of [undefined, ...tenants]) {
      const r = resolve(before, tenant, name)
      if (r === undefined) continue
      const c = resolve(after, tenant, name)
      let byCurrent = pairs.get(r)
      if (byCurrent === undefined) pairs.set(r, (byCurrent = new Map()))
      const seenBy = byCurrent.get(c)
      if (seenBy === undefined) byCurrent.set(c, [tenant])
      else seenBy.push(tenant)
    }
  }

  const problems: CompatProblem[] = []
  for (const [r, byCurrent] of pairs) {
    for (const [c, seenBy] of byCurrent) {
      const scope = seenBy.includes(undefined) ? 'shared' : `tenant ${seenBy.join(', ')}`
      const emit: Emit = (code, pointer, message) => { problems.push({ code, eventType: r.name, scope, pointer, message }) }
      if (c === undefined) {
        emit('contract_removed', '', scope === 'shared'
          ? `contract removed: events of this type were accepted under v${r.version} and would now be rejected as unregistered`
          : `no contract serves ${scope} any more: events of this type were accepted under v${r.version}`)
        continue
      }
      compareContracts(r, c, emit)
      // a version compares only within one contract's history, not shared against an override
      if ((r.tenants === undefined) === (c.tenants === undefined)) compareVersions(r, c, emit)
    }
  }
  return problems
}
