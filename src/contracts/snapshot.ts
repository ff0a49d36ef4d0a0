/**
 * The released snapshot (`config/contracts.released.json`): the catalog as last released, which
 * the compatibility check compares the working catalog against. It holds normalized contracts
 * (every flag spelled out) so a later change of defaults cannot change what was released, and it
 * has no timestamp so releasing an unchanged catalog leaves the file byte-for-byte the same.
 */
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs'
import { buildRegistry, type CatalogEntry } from './registry.js'
import { parseContract } from './parse.js'
import type { Contract, ContractFileProblem, Constraints, PropertySpec } from './types.js'

export const SNAPSHOT_FORMAT = 1

export interface ReleasedSnapshot {
  format: typeof SNAPSHOT_FORMAT
  contracts: Contract[]
}

/**
 * @returns contracts undefined when the file does not exist (nothing released yet)
 */
export function readReleased(file: string): { contracts: Contract[] | undefined; problems: ContractFileProblem[] } {
  if (!existsSync(file)) return { contracts: undefined, problems: [] }
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    return { contracts: undefined, problems: [{ file, pointer: '', message: `not valid JSON: ${(err as Error).message}` }] }
  }
  const doc = raw as Partial<ReleasedSnapshot> | null
  if (doc === null || typeof doc !== 'object' || doc.format !== SNAPSHOT_FORMAT || !Array.isArray(doc.contracts)) {
    return {
      contracts: undefined,
      problems: [{ file, pointer: '', message: `not a released-contracts snapshot: expected {"format": ${SNAPSHOT_FORMAT}, "contracts": [...]}` }],
    }
  }
  const problems: ContractFileProblem[] = []
  const entries: CatalogEntry[] = []
  doc.contracts.forEach((c: unknown, i) => {
    const parsed = parseContract(c, file, `/contracts/${i}`)
    problems.push(...parsed.problems)
    if (parsed.contract !== undefined) entries.push({ contract: parsed.contract, file })
  })
  problems.push(...buildRegistry(entries).problems)
  return { contracts: problems.length > 0 ? undefined : entries.map((e) => e.contract), problems }
}

/** only the fields that are set, in the order a reader expects them */
function orderedProperty(s: PropertySpec): PropertySpec {
  const constraints = (i: Constraints): Partial<Constraints> => ({
    ...(i.values !== undefined && { values: [...i.values] }),
    ...(i.maxLength !== undefined && { maxLength: i.maxLength }),
    ...(i.minimum !== undefined && { minimum: i.minimum }),
    ...(i.maximum !== undefined && { maximum: i.maximum }),
  })
  return {
    type: s.type,
    ...(s.description !== undefined && { description: s.description }),
    required: s.required,
    segmentable: s.segmentable,
    pii: s.pii,
    ...constraints(s),
    ...(s.items !== undefined && { items: { type: s.items.type, ...constraints(s.items) } }),
    ...(s.maxItems !== undefined && { maxItems: s.maxItems }),
  }
}

/** The snapshot text: stable key order, so a release diff shows only what changed. */
export function renderSnapshot(contracts: readonly Contract[]): string {
  const sorted = [...contracts].sort((a, b) =>
    a.name !== b.name ? (a.name < b.name ? -1 : 1) : (a.tenants?.join(',') ?? '').localeCompare(b.tenants?.join(',') ?? ''))
  const out: ReleasedSnapshot = {
    format: SNAPSHOT_FORMAT,
    contracts: sorted.map((c) => {
      const o: Contract = { name: c.name, version: c.version, owner: c.owner, description: c.description } as Contract
      if (c.tenants !== undefined) o.tenants = [...c.tenants]
      o.unknownProperties = c.unknownProperties
      o.properties = Object.fromEntries(Object.entries(c.properties).map(([k, v]) => [k, orderedProperty(v)]))
      return o
    }),
  }
  return `${JSON.stringify(out, null, 2)}\n`
}

/** @returns false when the file already held exactly this snapshot */
export function writeReleased(file: string, contracts: readonly Contract[]): boolean {
  const text = renderSnapshot(contracts)
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return false
  // write-then-rename: an interrupted release must not leave a truncated snapshot behind
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, text)
  renameSync(tmp, file)
  return true
}
