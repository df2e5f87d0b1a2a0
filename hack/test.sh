#!/usr/bin/env bash
# The README's test command: sets everything up on a fresh machine and runs every check.
#   hack/test.sh [pytest args...]
# Lint and types first (fast), then the control plane and local model builds (first run
# only; cached in ~/.cache/byollm), then the whole pytest suite (unit, integration on the
# real control plane, e2e over real sockets, the router in front of a real model, benchmark
# harness in short mode, and as root the realnode tests: router pods from their images on
# a real kubelet), then (full runs only) the
# unit tests again on the lowest dependency versions pyproject allows (hack/lowest.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Build up front so its progress is visible; if it cannot be built the cluster tests skip
# with one loud line, and the unit tests still run.
hack/controlplane/build.sh >/dev/null || echo "!!! control plane build failed: cluster tests will be skipped" >&2
hack/model.sh >/dev/null || echo "!!! local model (llama-cpp-python + SmolLM2-135M) build failed: model tests will be skipped" >&2
hack/tools.sh >/dev/null || echo "!!! client tools (helm, kubeconform, kubectl, kstatus) build failed: chart and GitOps tests will be skipped" >&2
# The real node's parts and our images (root only: the realnode tests need root). Built up
# front for the same reason; cached, so a second run builds nothing.
if [[ $(id -u) -eq 0 ]]; then
  hack/node/build.sh >/dev/null || echo "!!! real node parts build failed: realnode tests will be skipped" >&2
  hack/images.sh >&2 || echo "!!! image build failed: realnode tests will be skipped" >&2
fi
.venv/bin/pytest "$@"
if [[ $# -eq 0 ]]; then
  hack/lowest.sh
fi
