import t from 'tap'
import { NO_SERVER, serverUrl } from './fixtures/harness.js'
import { scenarios } from './fixtures/scenarios.js'

const url = serverUrl(t)
for (const [name, scenario] of Object.entries(scenarios)) {
  void t.test(`server: ${name}`, { skip: url === undefined ? NO_SERVER : false }, (t) => scenario(t, 'server'))
}
