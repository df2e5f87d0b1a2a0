#!/usr/bin/env bash
# Creates .venv with the four byollm packages installed editable (router, sdk, operator,
# devtools) and the test tools (idempotent; quick when done already).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.byollm-installed
if [[ ! -f $stamp || -n $(find pyproject.toml */pyproject.toml hack/packages.txt -newer "$stamp") ]]; then
  echo "setup.sh: installing byollm and its test tools into .venv (about 30 s the first time) ..." >&2
  # One line per package as pip collects it: progress rather than half a minute of silence.
  .venv/bin/python -m pip install --progress-bar off -r hack/packages.txt |
    sed -un 's/^Collecting \([^ ]*\).*/setup.sh:   \1/p' >&2
  touch "$stamp"
fi
