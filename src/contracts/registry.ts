/**
 * The event-contract registry: every contract file under one directory, checked together at
 * start-up. Loading either yields a complete registry or fails listing every problem in every
 * file, so one review round fixes them all.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { CdpError } from '../errors.js'
import { clickhouseType, columnName } from './columns.js'
import { deepFreeze } from '../lib/freeze.js'
import { escapePointerToken, parseContract } from './parse.js'
import type { Contract, ContractFileProblem, SegmentableColumn } from './types.js'
import { compileContract } from './validate.js'

export interface ContractRegistry {
  /** the contract for this tenant's event type: the tenant's own if it has one, else the shared one */
  get(tenant: string, eventType: string): Contract | undefined
  /** sorted by name, shared before tenant-specific */
  all(): readonly Contract[]
  /** one entry per segmentable property across all contracts, sorted by column */
  segmentableColumns(): readonly SegmentableColumn[]
}

export interface CatalogEntry {
  contract: Contract
  /** where it came from, for messages */
  file: string
}

export function formatProblem(p: ContractFileProblem): string {
  return p.pointer === '' ? `${p.file}: ${p.message}` : `${p.file}#${p.pointer}: ${p.message}`
}

export function scopeOf(c: Contract): string {
  return c.tenants === undefined ? 'shared' : `tenants ${c.tenants.join(', ')}`
}

/** Reads and checks every `*.json` directly under `dir` (in name order); other files are ignored. */
export function readContractDir(dir: string): { entries: CatalogEntry[]; problems: ContractFileProblem[] } {
  const problems: ContractFileProblem[] = []
  const entries: CatalogEntry[] = []
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    return { entries, problems: [{ file: dir, pointer: '', message: 'contracts directory not found' }] }
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
  for (const f of files) {
    const path = join(dir, f)
    let raw: unknown
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'))
    } catch (err) {
      problems.push({ file: path, pointer: '', message: `not valid JSON: ${(err as Error).message}` })
      continue
    }
    const { contract, problems: own } = parseContract(raw, path)
    problems.push(...own)
    if (contract === undefined) continue
    // the file name is how a reviewer finds a contract: it must say which one it holds
    const stem = basename(f, '.json')
    if (stem !== contract.name && !(stem.startsWith(`${contract.name}.`) && contract.tenants !== undefined)) {
      problems.push({
        file: path, pointer: '/name',
        message: `file must be named ${contract.name}.json (or ${contract.name}.<tenant>.json with "tenants" for a tenant-specific contract)`,
      })
      continue
    }
    entries.push({ contract, file: path })
  }
  return { entries, problems }
}

function order(a: Contract, b: Contract): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1
  const sa = a.tenants?.join(',') ?? ''
  const sb = b.tenants?.join(',') ?? ''
  return sa < sb ? -1 : sa > sb ? 1 : 0
}

function columnsOf(entries: CatalogEntry[], problems: ContractFileProblem[]): SegmentableColumn[] {
  const byProperty = new Map<string, { col: SegmentableColumn; file: string; eventType: string }>()
  const byColumn = new Map<string, string>()
  for (const { contract, file } of entries) {
    for (const [property, spec] of Object.entries(contract.properties)) {
      if (!spec.segmentable) continue
      const type = clickhouseType(spec)
      const pointer = `/properties/${escapePointerToken(property)}`
      const seen = byProperty.get(property)
      if (seen !== undefined) {
        if (seen.col.clickhouseType !== type) {
          problems.push({
            file, pointer,
            message: `segmentable property "${property}" is ${type} here but ${seen.col.clickhouseType} in ${seen.eventType} (${seen.file}); ` +
              `both would fill column ${seen.col.column}, which has one type: use the same type or another property name`,
          })
        } else if (!seen.col.eventTypes.includes(contract.name)) seen.col.eventTypes.push(contract.name)
        continue
      }
      const column = columnName(property)
      const other = byColumn.get(column)
      if (other !== undefined) {
        problems.push({
          file, pointer,
          message: `segmentable property "${property}" and "${other}" both map to column ${column}: rename one`,
        })
        continue
      }
      byColumn.set(column, property)
      byProperty.set(property, { col: { property, column, clickhouseType: type, eventTypes: [contract.name] }, file, eventType: contract.name })
    }
  }
  return [...byProperty.values()].map((v) => ({ ...v.col, eventTypes: v.col.eventTypes.sort() }))
    .sort((a, b) => (a.column < b.column ? -1 : 1))
}

/** Checks a catalog as a whole (one contract per tenant and type, consistent columns) and indexes it. */
export function buildRegistry(input: CatalogEntry[]): { registry: ContractRegistry | undefined; problems: ContractFileProblem[] } {
  const problems: ContractFileProblem[] = []
  const entries = [...input].sort((a, b) => order(a.contract, b.contract))
  const shared = new Map<string, CatalogEntry>()
  const perTenant = new Map<string, Map<string, CatalogEntry>>()
  for (const e of entries) {
    const { contract, file } = e
    if (contract.tenants === undefined) {
      const dup = shared.get(contract.name)
      if (dup !== undefined) problems.push({ file, pointer: '/name', message: `shared contract ${contract.name} is also defined in ${dup.file}` })
      else shared.set(contract.name, e)
      continue
    }
    contract.tenants.forEach((tenant, i) => {
      let m = perTenant.get(tenant)
      if (m === undefined) perTenant.set(tenant, (m = new Map()))
      const dup = m.get(contract.name)
      if (dup !== undefined) {
        problems.push({ file, pointer: `/tenants/${i}`, message: `tenant ${tenant} already has a ${contract.name} contract in ${dup.file}` })
      } else m.set(contract.name, e)
    })
  }
  const columns = columnsOf(entries, problems)
  if (problems.length > 0) return { registry: undefined, problems }

  for (const e of entries) compileContract(e.contract)
  const all = deepFreeze(entries.map((e) => e.contract))
  const frozenColumns = deepFreeze(columns)
  const sharedContracts = new Map([...shared].map(([k, v]) => [k, v.contract]))
  const tenantContracts = new Map([...perTenant].map(([t, m]) => [t, new Map([...m].map(([k, v]) => [k, v.contract]))]))
  const registry: ContractRegistry = {
    get: (tenant, eventType) => tenantContracts.get(tenant)?.get(eventType) ?? sharedContracts.get(eventType),
    all: () => all,
    segmentableColumns: () => frozenColumns,
  }
  return { registry, problems }
}

export function contractsInvalid(problems: ContractFileProblem[], what: string): CdpError {
  return new CdpError('config_invalid', `${what}:\n  - ${problems.map(formatProblem).join('\n  - ')}`, {
    details: problems.map((p) => ({ pointer: `${p.file}#${p.pointer}`, code: 'contract_invalid', message: p.message })),
  })
}

/**
 * Loads every contract under `dir`. Throws CdpError `config_invalid` listing every problem
 * (details: one per problem, pointer `<file>#<json pointer>`).
 */
export function loadContracts(dir: string): ContractRegistry {
  const { entries, problems } = readContractDir(dir)
  const built = buildRegistry(entries)
  const all = [...problems, ...built.problems]
  if (all.length > 0 || built.registry === undefined) throw contractsInvalid(all, `invalid event contracts in ${dir}`)
  return built.registry
}

/**
 * A registry from contract documents already in memory (file form or normalized), checked like
 * files. Throws like loadContracts.
 */
export function createRegistry(contracts: readonly unknown[], source = '(memory)'): ContractRegistry {
  const problems: ContractFileProblem[] = []
  const entries: CatalogEntry[] = []
  contracts.forEach((raw, i) => {
    const parsed = parseContract(raw, source, `/${i}`)
    problems.push(...parsed.problems)
    if (parsed.contract !== undefined) entries.push({ contract: parsed.contract, file: source })
  })
  const built = buildRegistry(entries)
  problems.push(...built.problems)
  if (problems.length > 0 || built.registry === undefined) throw contractsInvalid(problems, `invalid event contracts in ${source}`)
  return built.registry
}
