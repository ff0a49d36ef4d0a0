import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { processEnv } from '../../config/index.js'
import type { Command } from '../command.js'

/** the project root, from src/cli/commands (tsx) or dist/src/cli/commands (npm run build) */
const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/src/') ? '../../../../' : '../../../', import.meta.url))

export const stackCommand: Command = {
  name: 'stack',
  summary: 'the local Kafka, registry and Redis (tools/stack/stack.sh)',
  usage: [
    'usage: cdp stack up|down|status|logs [service]',
    '  up      start Kafka, the schema registry and Redis (or reuse the ones running under STACK_DIR)',
    '  down    stop them',
    '  status  what runs, on which ports',
    '  logs    a service\'s log',
  ],
  run: (args) => {
    const r = spawnSync('bash', [`${ROOT}tools/stack/stack.sh`, ...args], { stdio: 'inherit', env: processEnv() })
    return Promise.resolve(r.status ?? 1)
  },
}
