#!/usr/bin/env bash
# The fault suite's full form: 50 LLMConfigs, 30 s API server and etcd outages, 20 s of
# proxy faults; rewrites the table in docs/faults.md. Plain `pytest` runs the short form
# (8 objects, 5 s) as part of the suite (marker `faults`).
#
#   hack/faults.sh [pytest args...]     # e.g. -k lease
# Env: BYOLLM_FAULTS_N, BYOLLM_FAULTS_OUTAGE, BYOLLM_FAULTS_WINDOW (seconds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/setup.sh
hack/controlplane/build.sh >/dev/null
export BYOLLM_FAULTS_N=${BYOLLM_FAULTS_N:-50}
export BYOLLM_FAULTS_OUTAGE=${BYOLLM_FAULTS_OUTAGE:-30}
export BYOLLM_FAULTS_WINDOW=${BYOLLM_FAULTS_WINDOW:-20}
export BYOLLM_FAULTS_DOCS=docs/faults.md
exec .venv/bin/pytest tests/faults -m faults -p no:cacheprovider -s -q "$@"
