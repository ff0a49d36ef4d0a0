import type { Command } from '../command.js'

export const clickhouseGatewayCommand: Command = {
  name: 'clickhouse-gateway',
  summary: 'share one embedded chDB over HTTP (development and tests)',
  usage: [
    'usage: cdp clickhouse-gateway [--port N] [--path DIR] [--token-file FILE]',
    '  serves the chDB data dir (default CHDB_PATH) over ClickHouse\'s HTTP interface on 127.0.0.1',
    '  --port 0 picks a free port; the URL is printed once it listens (docs/CLICKHOUSE-GATEWAY.md)',
    '  clients send the token written to --token-file (default <path>.gateway-token) as their password',
  ],
  // loaded on demand: chDB is a large native module nothing else of the CLI needs
  run: async (args, { out, config }) => (await import('../../../tools/clickhouse-gateway/command.js')).clickhouseGatewayCommand(config(), args, out),
}
