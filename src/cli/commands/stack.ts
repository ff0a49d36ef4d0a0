import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { processEnv } from '../../config/index.js'
import type { Command } from '../command.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

export const stackCommand: Command = {
  name: 'stack',
  summary: 'the local Kafka, registry and Redis (scripts/stack.sh)',
  usage: [
    'usage: cdp stack up|down|status|logs [service]',
    '  up      start Kafka, the schema registry and Redis (or reuse the ones running under STACK_DIR)',
    '  down    stop them',
    '  status  what runs, on which ports',
    '  logs    a service\'s log',
  ],
  run: (args) => {
    const r = spawnSync('bash', [`${ROOT}scripts/stack.sh`, ...args], { stdio: 'inherit', env: processEnv() })
    return Promise.resolve(r.status ?? 1)
  },
}
