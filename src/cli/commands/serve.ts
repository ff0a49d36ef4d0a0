import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { createLogger } from '../../observability/logger.js'
import { installSignalHandlers, serve, ROLES, type Role } from '../../app/serve.js'
import { isClusterPrimary, superviseWorkers } from '../../app/cluster.js'
import type { Command } from '../command.js'

/**
 * What helps on the machine (issue 10, docs/BENCHMARKS.md): the API is one thread per process, so
 * role api gets a process per core; roles that own the consumer stay single (one embedded chDB
 * owner; consumers scale by group members).
 */
export function autoWorkers(role: Role, cores = availableParallelism()): number {
  return role === 'api' ? Math.min(64, Math.max(1, cores)) : 1
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the service (API, consumer or both)',
  usage: [
    'usage: cdp serve [--role all|api|consumer] [--workers N|auto]',
    '  --role     all: API and consumer in one process (default); api; consumer',
    '  --workers  API processes sharing one port (role api only; 1..64). Default auto: one per core',
    '             for role api (os.availableParallelism()), 1 for the other roles',
    'Runs until SIGTERM/SIGINT, then drains: requests in flight finish, queued records are sent.',
  ],
  async run(args, { out, config }) {
    const { values } = parseArgs({ args, options: { role: { type: 'string', default: 'all' }, workers: { type: 'string', default: 'auto' } } })
    const role = values.role as Role
    if (!ROLES.includes(role)) { out('--role must be all, api or consumer'); return 2 }
    const workers = values.workers === 'auto' ? autoWorkers(role) : Number(values.workers)
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) { out('--workers must be a whole number from 1 to 64'); return 2 }
    if (workers > 1 && role !== 'api') { out('--workers applies to --role api (the consumer scales by group members; embedded chDB has one owner)'); return 2 }
    const cfg = config()
    const log = createLogger(cfg)
    if (workers > 1 && isClusterPrimary()) return superviseWorkers(workers, log)
    const running = await serve(cfg, role, log)
    installSignalHandlers(running.close, log, cfg.shutdown.deadlineMs)
    return new Promise<number>(() => undefined) // runs until a signal
  },
}
