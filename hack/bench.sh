#!/usr/bin/env bash
# Runs both benchmarks and writes docs/benchmarks.md plus docs/bench-router.png and
# docs/bench-operator.png.
#
#   hack/bench.sh            # full: router (Go floor, Python floor, byollm, LiteLLM), operator at 100 and 1,000
#   hack/bench.sh --short    # smoke: tiny counts, no LiteLLM (what CI runs via pytest)
#
# LiteLLM and matplotlib go into .venv-bench/ (gitignored) so their pins never touch the
# project venv; wrk comes from Debian (apt-get) when missing and we are root. Results
# (JSON, logs, control-plane state) go to build/bench/. Loopback only, bounded in time.
# Env: BENCH_SIZES (default 100,1000), BENCH_OUT (default docs; --short: build/bench/short),
# LITELLM_VERSION.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
short=""
[[ ${1:-} == --short ]] && short="--short"
hack/setup.sh
PY=.venv/bin/python
OUT=${BENCH_OUT:-docs}
[[ -n $short ]] && OUT=${BENCH_OUT:-build/bench/short}  # never overwrite the full report
RES=build/bench
mkdir -p "$RES" "$OUT"

if ! command -v wrk >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || true
fi
# The Go floor proxy and the Go load generator (tests/bench/goproxy) are built with the
# machine's Go into ~/.cache/byollm/bench, once per source version.
if command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]]; then
  $PY -c "import sys; sys.path.insert(0, 'tests/bench'); import benchlib; print(benchlib.benchgo())" >&2
else
  command -v wrk >/dev/null || echo "bench.sh: neither Go nor wrk; using the slower built-in load generator" >&2
fi

# LiteLLM pinned to a release that predates the package's known compromised uploads.
LITELLM_VERSION=${LITELLM_VERSION:-1.81.13}
REPORT_PY=$PY
if [[ -z $short ]]; then
  if [[ ! -x .venv-bench/bin/python ]]; then
    python3 -m venv .venv-bench
  fi
  if ! .venv-bench/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null \
     || ! .venv-bench/bin/python -c "import matplotlib" 2>/dev/null; then
    .venv-bench/bin/pip install -q "litellm[proxy]==$LITELLM_VERSION" matplotlib \
      || echo "bench.sh: could not install LiteLLM/matplotlib; continuing without" >&2
  fi
  .venv-bench/bin/python -c "import matplotlib" 2>/dev/null && REPORT_PY=.venv-bench/bin/python
fi
litellm_arg=()
[[ -z $short && -x .venv-bench/bin/litellm ]] && litellm_arg=(--litellm .venv-bench/bin/litellm)

echo "== router data plane" >&2
$PY tests/bench/router_bench.py $short "${litellm_arg[@]}" --out "$RES/router.json"
echo "== auto-router rule path" >&2
$PY tests/bench/autoroute_bench.py $short | tee "$RES/autoroute.txt"
echo "== operator control plane" >&2
if [[ -n $short ]]; then
  $PY tests/bench/operator_bench.py --short --out "$RES/operator.json"
else
  $PY tests/bench/operator_bench.py --sizes "${BENCH_SIZES:-100,1000}" --out "$RES/operator.json"
fi
extra=()
[[ -f tests/bench/analysis.md ]] && extra=(--extra tests/bench/analysis.md)
$REPORT_PY tests/bench/report.py --router "$RES/router.json" --operator "$RES/operator.json" \
  --autoroute "$RES/autoroute.txt" --md "$OUT/benchmarks.md" --png-dir "$OUT" "${extra[@]}"
