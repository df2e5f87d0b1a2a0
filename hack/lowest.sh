#!/usr/bin/env bash
# Dependency floors are true: installs every package at the lowest version our pyproject
# files allow (uv's lowest-direct resolution) into .venv-lowest and runs the unit tests.
#   hack/lowest.sh [pytest args...]     (default: tests/unit -q)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/setup.sh
[[ -x .venv/bin/uv ]] || .venv/bin/python -m pip install -q uv
stamp=.venv-lowest/.byollm-installed
if [[ ! -f $stamp || -n $(find pyproject.toml */pyproject.toml hack/packages.txt -newer "$stamp" 2>/dev/null) ]]; then
  echo "lowest.sh: installing the lowest declared versions into .venv-lowest ..." >&2
  rm -rf .venv-lowest
  .venv/bin/uv venv -q -p "$(.venv/bin/python -c 'import sys; print(sys.executable)')" .venv-lowest
  VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip install -q --resolution lowest-direct \
    -r hack/packages.txt
  touch "$stamp"
fi
VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip list 2>/dev/null \
  | grep -iE '^(pydantic|httpx|httpcore|kubernetes|kopf|uvicorn|cryptography|orjson) ' \
  | awk '{printf "%s %s  ", $1, $2} END {print ""}' | sed 's/^/lowest.sh: /' >&2
if [[ $# -eq 0 ]]; then set -- tests/unit -q -p no:cacheprovider; fi
exec .venv-lowest/bin/python -m pytest "$@"
