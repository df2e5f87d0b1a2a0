#!/usr/bin/env bash
# The README's main command: sets up and runs byollm locally (control plane, CRD, operator,
# routers as local processes). Ctrl-C stops everything.
#   hack/dev.sh [byollm dev options]   routers as local processes (any OS, no root)
#   hack/dev.sh --real-node            real pods from our images on a real kubelet (root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/setup.sh
if [[ ${1:-} == --real-node ]]; then
  # Real pods (root, Linux): a control plane and a real node (containerd, kubelet,
  # kube-proxy, kube-router, CoreDNS) with the router and operator images built here;
  # prints the kubeconfig and the `helm install` line for those images.
  shift
  [[ $(id -u) -eq 0 ]] || { echo "dev.sh --real-node: needs root" >&2; exit 2; }
  exec .venv/bin/python -m byollm_dev.realnode "$@"
fi
exec .venv/bin/byollm dev "$@"
