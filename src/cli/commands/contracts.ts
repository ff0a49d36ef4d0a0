/**
 * `cdp contracts check | release [--force] | list`.
 *
 * check:   validate config/contracts and compare it with the released snapshot; exit 1 on any
 *          problem, so CI refuses the change the way a schema registry refuses a schema.
 * release: write the snapshot after the same check. --force releases an incompatible catalog:
 *          a deliberate breaking change, which review must have agreed to.
 * list:    the catalog and the ClickHouse columns its segmentable properties become.
 *
 * Exit codes: 0 ok, 1 invalid or incompatible contracts, 2 usage.
 */
import { loadConfig } from '../../config/index.js'
import { checkCompatibility, formatCompatProblem } from '../../contracts/compat.js'
import { buildRegistry, formatProblem, readContractDir, scopeOf, type ContractRegistry } from '../../contracts/registry.js'
import { readReleased, renderSnapshot, writeReleased } from '../../contracts/snapshot.js'
import type { Contract } from '../../contracts/types.js'

export interface ContractPaths {
  /** config.contracts.dir */
  dir: string
  /** config.contracts.releasedFile */
  releasedFile: string
}

const USAGE = [
  'usage: cdp contracts <command>',
  '  check              validate the contracts and check them against the released snapshot',
  '  release [--force]  check, then write the released snapshot (--force: release incompatible changes)',
  '  list               list contracts and segmentable columns',
]

import type { Command, Out } from '../command.js'

function loadCurrent(dir: string, out: Out): ContractRegistry | undefined {
  const { entries, problems } = readContractDir(dir)
  const built = buildRegistry(entries)
  const all = [...problems, ...built.problems]
  for (const p of all) out(`invalid: ${formatProblem(p)}`)
  return all.length > 0 ? undefined : built.registry
}

/** @returns [] when nothing was released yet; undefined when the snapshot is unreadable */
function loadReleased(file: string, out: Out): Contract[] | undefined {
  const { contracts, problems } = readReleased(file)
  for (const p of problems) out(`invalid: ${formatProblem(p)}`)
  if (problems.length > 0) return undefined
  if (contracts === undefined) {
    out(`no released snapshot at ${file}: every contract counts as new`)
    return []
  }
  return contracts
}

function changedCount(released: readonly Contract[], current: readonly Contract[]): number {
  const key = (c: Contract): string => `${c.name}|${c.tenants?.join(',') ?? ''}`
  const before = new Map(released.map((c) => [key(c), renderSnapshot([c])]))
  let n = 0
  for (const c of current) {
    if (before.get(key(c)) !== renderSnapshot([c])) n++
    before.delete(key(c))
  }
  return n + before.size
}

function check(paths: ContractPaths, out: Out, mode: 'check' | 'release' | 'force'): number {
  const registry = loadCurrent(paths.dir, out)
  const released = loadReleased(paths.releasedFile, out)
  if (registry === undefined || released === undefined) return 1
  const current = registry.all()
  const problems = checkCompatibility(released, current)
  for (const p of problems) out(`incompatible: ${formatCompatProblem(p)}`)
  if (problems.length > 0 && mode !== 'force') {
    out(`${problems.length} incompatible change(s) against ${paths.releasedFile}` +
      (mode === 'release' ? ': not released (use --force only for a reviewed breaking change)' : ''))
    return 1
  }
  const changed = changedCount(released, current)
  if (mode === 'check') {
    out(`${current.length} contract(s) in ${paths.dir} are compatible with ${paths.releasedFile}` +
      (changed > 0 ? `; ${changed} changed since release (run \`cdp contracts release\`)` : '; nothing to release'))
    return 0
  }
  const written = writeReleased(paths.releasedFile, current)
  out(written
    ? `released ${current.length} contract(s) to ${paths.releasedFile} (${changed} changed)`
    : `${paths.releasedFile} is already up to date`)
  return 0
}

function list(paths: ContractPaths, out: Out): number {
  const registry = loadCurrent(paths.dir, out)
  if (registry === undefined) return 1
  for (const c of registry.all()) {
    const props = Object.values(c.properties)
    const count = (f: (p: (typeof props)[number]) => boolean): number => props.filter(f).length
    out(`${c.name} v${c.version} (${scopeOf(c)}) owner=${c.owner} properties=${props.length} ` +
      `required=${count((p) => p.required)} segmentable=${count((p) => p.segmentable)} pii=${count((p) => p.pii)} ` +
      `unknown=${c.unknownProperties}`)
  }
  const columns = registry.segmentableColumns()
  out(`segmentable columns (${columns.length}):`)
  for (const col of columns) out(`  ${col.column} ${col.clickhouseType} <- ${col.property} (${col.eventTypes.join(', ')})`)
  return 0
}

/**
 * @param args the words after `cdp contracts`
 * @param paths defaults to the configured `config.contracts` paths
 * @returns the process exit code
 */
export async function contractsCommand(args: string[], out: Out, paths?: ContractPaths): Promise<number> {
  const [command, ...rest] = args
  const usage = (problem: string | undefined): number => {
    if (problem !== undefined) out(problem)
    for (const l of USAGE) out(l)
    return problem === undefined ? 0 : 2
  }
  if (command === undefined) return usage('missing command')
  if (command === 'help' || command === '--help' || command === '-h') return usage(undefined)
  if (command !== 'check' && command !== 'release' && command !== 'list') return usage(`unknown command: ${command}`)
  const extra = rest.filter((a) => !(command === 'release' && a === '--force'))
  if (extra.length > 0) return usage(`unknown argument(s): ${extra.join(' ')}`)

  const p = paths ?? loadConfig().contracts
  if (command === 'list') return list(p, out)
  return check(p, out, command === 'check' ? 'check' : rest.includes('--force') ? 'force' : 'release')
}

export const contractsCommandDef: Command = {
  name: 'contracts',
  summary: 'check, release and list the event contracts',
  usage: USAGE,
  run: (args, { out, config }) => contractsCommand(args, out, config().contracts),
}
