import type { Config } from '../config/index.js'

export type Out = (line: string) => void

export interface CommandContext {
  out: Out
  /** the validated config, loaded on first use (stack and --help need none) */
  config(): Readonly<Config>
}

/** One `cdp <name>` command: main.ts prints `usage` for `cdp <name> --help` and dispatches the rest to `run`. */
export interface Command {
  name: string
  /** one line for `cdp --help` */
  summary: string
  usage: readonly string[]
  /** @returns the process exit code (0 ok, 1 failed, 2 usage) */
  run(args: string[], ctx: CommandContext): Promise<number>
}

export const isHelp = (args: readonly string[]): boolean => args.includes('--help') || args.includes('-h') || args[0] === 'help'
