import t from 'tap'
import { COMMANDS, main } from '../../../src/cli/dispatch.js'

async function run(argv: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = []
  const code = await main(argv, (l) => lines.push(l))
  return { code, lines }
}

void t.test('cdp --help lists every command', async (t) => {
  const { code, lines } = await run(['--help'])
  t.equal(code, 0)
  for (const c of COMMANDS) t.ok(lines.some((l) => l.trimStart().startsWith(`${c.name} `)), c.name)
})

void t.test('cdp <command> --help prints that command\'s usage without loading config or connecting', async (t) => {
  t.same(COMMANDS.map((c) => c.name).sort(), ['clickhouse-gateway', 'contracts', 'dlq', 'erase', 'import', 'keys', 'query', 'replay', 'serve', 'stack', 'state', 'suppressions', 'tail'])
  for (const c of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      const { code, lines } = await run([c.name, flag])
      t.equal(code, 0, `${c.name} ${flag}`)
      t.match(lines[0], new RegExp(`^usage: cdp ${c.name}\\b`), `${c.name} ${flag}: usage line`)
    }
  }
})

void t.test('an unknown command is a usage error that lists the commands', async (t) => {
  const { code, lines } = await run(['frobnicate'])
  t.equal(code, 2)
  t.match(lines[0], /unknown command "frobnicate"/)
  t.ok(lines.some((l) => l.includes('serve')))
})
