#!/usr/bin/env node
// Runs the compiled CLI (npm run build). `npm start` builds first.
import('../dist/src/cli/main.js')
