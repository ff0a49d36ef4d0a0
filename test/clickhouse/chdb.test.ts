import t from 'tap'
import { scenarios } from './fixtures/scenarios.js'

for (const [name, scenario] of Object.entries(scenarios)) {
  void t.test(`chdb: ${name}`, (t) => scenario(t, 'chdb'))
}
