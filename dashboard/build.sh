#!/usr/bin/env bash
# Builds dashboard/dist/index.html: `npm ci` when node_modules is missing or
# older than package-lock.json, then `npm run build`. Used by ctest (the
# browser tests' fixture) and by deploy/demo.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund
fi
npm run --silent build
