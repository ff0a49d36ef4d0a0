/**
 * `cdp serve --workers auto` (the default): one API process per core for role api, one process for
 * the roles that own the consumer (embedded chDB has one owner; consumers scale by group members).
 */
import t from 'tap'
import { autoWorkers } from '../../../src/cli/commands/serve.js'

void t.test('auto workers: a process per core for role api only, within 1..64', async (t) => {
  t.equal(autoWorkers('api', 2), 2)
  t.equal(autoWorkers('api', 16), 16)
  t.equal(autoWorkers('api', 1), 1)
  t.equal(autoWorkers('api', 0), 1, 'never fewer than one')
  t.equal(autoWorkers('api', 128), 64, 'never more than --workers allows')
  t.equal(autoWorkers('all', 8), 1, 'role all owns the consumer and embedded chDB')
  t.equal(autoWorkers('consumer', 8), 1)
})
