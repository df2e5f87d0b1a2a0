#!/usr/bin/env bash
# The README's main command: sets up and runs byollm locally (control plane, CRD, operator,
# routers as local processes). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/setup.sh
exec .venv/bin/byollm dev "$@"
