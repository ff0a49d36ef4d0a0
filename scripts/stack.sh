#!/usr/bin/env bash
exec bash "$(dirname "${BASH_SOURCE[0]}")/../tools/stack/stack.sh" "$@"   # moved to tools/stack/
