import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { contractsCommand } from '../../../src/cli/commands/contracts.js'
import { readReleased, renderSnapshot } from '../../../src/contracts/snapshot.js'
import { loadContracts } from '../../../src/contracts/registry.js'
import { CATALOG_DIR, RELEASED_FILE, checkedInFiles, fileName, type ContractFile } from './fixtures/catalog.js'

async function run(args: string[], paths?: { dir: string; releasedFile: string }): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = []
  const code = await contractsCommand(args, (l) => lines.push(l), paths)
  return { code, lines }
}

/** a copy of the checked-in catalog and snapshot, edited, in the test's own dir */
function workspace(t: Test, edit: (files: Map<string, ContractFile>) => void = () => undefined): { dir: string; releasedFile: string } {
  const files = checkedInFiles()
  edit(files)
  const root = t.testdir({ contracts: Object.fromEntries([...files.values()].map((c) => [fileName(c), JSON.stringify(c, null, 2)])) })
  const releasedFile = join(root, 'released.json')
  copyFileSync(RELEASED_FILE, releasedFile)
  return { dir: join(root, 'contracts'), releasedFile }
}

void t.test('check: the checked-in catalog passes', async (t) => {
  const { code, lines } = await run(['check'], { dir: CATALOG_DIR, releasedFile: RELEASED_FILE })
  t.equal(code, 0, lines.join('\n'))
  t.match(lines.at(-1), /contract\(s\) in .* are compatible with/)
})

void t.test('check: every incompatible change is printed and the exit code is 1', async (t) => {
  const paths = workspace(t, (files) => {
    const p = files.get('purchase_completed.json') as ContractFile
    p.version = 2
    p.properties.loyalty_id = { type: 'string', required: true }
    p.properties.amount = { type: 'integer', required: true }
    files.delete('email_opened.json')
  })
  const { code, lines } = await run(['check'], paths)
  t.equal(code, 1)
  t.same(lines.filter((l) => l.startsWith('incompatible: ')).length, 3, lines.join('\n'))
  t.ok(lines.some((l) => l.includes('purchase_completed (shared) /properties/amount/type: [type_changed]')))
  t.ok(lines.some((l) => l.includes('purchase_completed (shared) /properties/loyalty_id: [required_added]')))
  t.ok(lines.some((l) => l.includes('email_opened (shared): [contract_removed]')))
})

void t.test('check: invalid contract files are printed with file and pointer', async (t) => {
  const paths = workspace(t, (files) => {
    (files.get('cart_updated.json') as ContractFile).properties.quantity = { type: 'integer', minimum: 'zero' }
  })
  const { code, lines } = await run(['check'], paths)
  t.equal(code, 1)
  t.match(lines, [/^invalid: .*cart_updated\.json#\/properties\/quantity\/minimum: must be integer/])
})

void t.test('check: an unreadable snapshot fails; a missing one means nothing was released', async (t) => {
  const paths = workspace(t)
  writeFileSync(paths.releasedFile, '{"contracts": []}')
  const broken = await run(['check'], paths)
  t.equal(broken.code, 1)
  t.match(broken.lines, [/^invalid: .*released\.json: not a released-contracts snapshot/])

  const missing = await run(['check'], { dir: paths.dir, releasedFile: join(paths.dir, '..', 'nothing.json') })
  t.equal(missing.code, 0)
  t.match(missing.lines[0], /no released snapshot/)
})

void t.test('release: refuses incompatible changes unless forced', async (t) => {
  const paths = workspace(t, (files) => {
    const p = files.get('purchase_completed.json') as ContractFile
    p.version = 2
    p.properties.loyalty_id = { type: 'string', required: true }
  })
  const before = readFileSync(paths.releasedFile, 'utf8')
  const refused = await run(['release'], paths)
  t.equal(refused.code, 1)
  t.match(refused.lines.at(-1), /not released/)
  t.equal(readFileSync(paths.releasedFile, 'utf8'), before, 'snapshot untouched')

  const forced = await run(['release', '--force'], paths)
  t.equal(forced.code, 0, forced.lines.join('\n'))
  const snapshot = readReleased(paths.releasedFile).contracts
  t.equal(snapshot?.find((c) => c.name === 'purchase_completed')?.version, 2)
  t.equal((await run(['check'], paths)).code, 0, 'what was released is the new baseline')
})

void t.test('release: writes a compatible catalog, then has nothing left to do', async (t) => {
  const paths = workspace(t, (files) => {
    const p = files.get('order_refunded.json') as ContractFile
    p.version = 2
    p.properties.note = { type: 'string', maxLength: 500 }
  })
  const pending = await run(['check'], paths)
  t.match(pending.lines.at(-1), /1 changed since release/)
  const first = await run(['release'], paths)
  t.equal(first.code, 0)
  t.match(first.lines.at(-1), /^released \d+ contract\(s\) to .* \(1 changed\)/)
  t.equal(readFileSync(paths.releasedFile, 'utf8'), renderSnapshot(loadContracts(paths.dir).all()))
  t.match((await run(['check'], paths)).lines.at(-1), /nothing to release/)
  t.match((await run(['release'], paths)).lines.at(-1), /already up to date/)
})

void t.test('release: the first release creates the snapshot', async (t) => {
  const paths = workspace(t)
  const releasedFile = join(paths.dir, '..', 'first.json')
  const { code } = await run(['release'], { dir: paths.dir, releasedFile })
  t.equal(code, 0)
  t.ok(existsSync(releasedFile))
  t.equal(readReleased(releasedFile).contracts?.length, loadContracts(paths.dir).all().length)
})

void t.test('the checked-in snapshot is rendered the way release writes it', async (t) => {
  const text = readFileSync(RELEASED_FILE, 'utf8')
  t.equal(renderSnapshot(readReleased(RELEASED_FILE).contracts ?? []), text)
})

void t.test('list: contracts and segmentable columns', async (t) => {
  const { code, lines } = await run(['list'], { dir: CATALOG_DIR, releasedFile: RELEASED_FILE })
  t.equal(code, 0)
  t.ok(lines.some((l) => /^purchase_completed v\d+ \(shared\) owner=\S+ properties=\d+ required=3 /.test(l)))
  t.ok(lines.some((l) => l === '  p_store_id Nullable(String) <- store_id (order_refunded, purchase_completed)'))
})

void t.test('usage errors exit 2, help exits 0', async (t) => {
  for (const args of [[], ['frobnicate'], ['check', '--force'], ['list', 'extra']]) {
    const { code, lines } = await run(args, { dir: CATALOG_DIR, releasedFile: RELEASED_FILE })
    t.equal(code, 2, args.join(' '))
    t.match(lines, [/./, /^usage: cdp contracts/])
  }
  const help = await run(['help'], { dir: CATALOG_DIR, releasedFile: RELEASED_FILE })
  t.equal(help.code, 0)
  t.match(help.lines[0], /^usage/)
})
