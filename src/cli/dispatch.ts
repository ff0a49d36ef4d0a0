/**
 * The `cdp` command as a function (main.ts runs it): a thin dispatcher. Each command lives in
 * src/cli/commands/<name>.ts and builds what it needs over the composition root (src/app).
 * `cdp --help` lists the commands; `cdp <command> --help` prints a command's usage.
 */
import { loadConfig, type Config } from '../config/index.js'
import { isHelp, type Command, type Out } from './command.js'
import { serveCommand } from './commands/serve.js'
import { stackCommand } from './commands/stack.js'
import { keysCommand } from './commands/keys.js'
import { contractsCommandDef } from './commands/contracts.js'
import { queryCommand } from './commands/query.js'
import { replayCommand } from './commands/replay.js'
import { importCommand } from './commands/import.js'
import { stateCommand } from './commands/state.js'
import { clickhouseGatewayCommand } from './commands/clickhouse-gateway.js'
import { dlqCommand } from './commands/dlq.js'
import { tailCommand } from './commands/tail.js'
import { eraseCommand, suppressionsCommand } from './commands/erase.js'

export const COMMANDS: readonly Command[] = [
  serveCommand, stackCommand, keysCommand, contractsCommandDef, queryCommand, importCommand, replayCommand, stateCommand, clickhouseGatewayCommand,
  dlqCommand, tailCommand, eraseCommand, suppressionsCommand,
]

function overview(out: Out): void {
  out('usage: cdp <command> [options]   (cdp <command> --help for its options)')
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  for (const c of COMMANDS) out(`  ${c.name.padEnd(width)}  ${c.summary}`)
}

export async function main(argv: string[], out: Out = (line) => process.stdout.write(line + '\n')): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    overview(out)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS.find((c) => c.name === name)
  if (command === undefined) {
    out(`cdp: unknown command ${JSON.stringify(name)}`)
    overview(out)
    return 2
  }
  if (isHelp(args)) {
    for (const line of command.usage) out(line)
    return 0
  }
  let config: Readonly<Config> | undefined
  return command.run(args, { out, config: () => (config ??= loadConfig()) })
}
