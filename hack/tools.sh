#!/usr/bin/env bash
# Builds the client tools (helm, kubeconform, kubectl, kstatus) from their Go modules with the
# machine's Go toolchain, pinned, into ~/.cache/byollm/tools/<name>-<version>/, and prints
# their paths. A second run finds the cache and builds nothing. CI on a fresh machine runs
# this too (first build: helm ~2-4 min, kubectl ~2-4 min, kubeconform ~20 s on 2 cores).
# kubectl is pinned to the test control plane's Kubernetes version; it is built from the
# small module in hack/tools/kubectl (go.mod/go.sum pin every dependency) because
# `go install k8s.io/kubernetes/cmd/kubectl@...` is refused (replace directives).
# kstatus is a tiny wrapper (hack/tools/kstatus) around the kstatus library Flux uses
# (github.com/fluxcd/cli-utils), so tests judge LLMConfigs exactly as Flux health checks do.
#
#   hack/tools.sh            # prints one "name=/path" line per tool
#   hack/tools.sh kubectl    # prints only the kubectl path
#
# Env: BYOLLM_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/byollm).
set -euo pipefail

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
KUBECTL_VERSION=v1.36.3   # = K8S_VERSION in hack/controlplane/build.sh
KSTATUS_VERSION=fluxcd-cli-utils-v1.3.0   # the version pinned in hack/tools/kstatus/go.mod
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
declare -A PKG=(
  [helm]="helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  [kubeconform]="github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
)
declare -A VER=([helm]=$HELM_VERSION [kubeconform]=$KUBECONFORM_VERSION [kubectl]=$KUBECTL_VERSION [kstatus]=$KSTATUS_VERSION)
declare -A LDX=(
  [helm]="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  [kubectl]="-X k8s.io/component-base/version.gitVersion=$KUBECTL_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(minor=${KUBECTL_VERSION#v1.}; echo "${minor%%.*}")"
)
declare -A MODDIR=([kubectl]="$here/tools/kubectl" [kstatus]="$here/tools/kstatus")   # built from a local module, not pkg@version

root=${BYOLLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/byollm}/tools
mkdir -p "$root"

build() {  # build <name>: prints the binary path, builds it once
  local name=$1 out="$root/$1-${VER[$1]}"
  if [[ -n "${MODDIR[$name]:-}" ]]; then  # a local module: its content is part of the key
    out+="-$(cat "${MODDIR[$name]}"/go.mod "${MODDIR[$name]}"/go.sum "${MODDIR[$name]}"/*.go | sha256sum | cut -c1-12)"
  fi
  if [[ ! -x "$out/$name" ]]; then
    exec 9>"$root/.lock-$name"
    flock 9
    if [[ ! -x "$out/$name" ]]; then
      command -v go >/dev/null || { echo "tools.sh: no Go toolchain on PATH" >&2; return 3; }
      local start tmp
      start=$(date +%s)
      tmp=$(mktemp -d "$root/build.XXXXXX")
      echo "tools.sh: building $name ${VER[$name]} (first run only)..." >&2
      if [[ -n "${MODDIR[$name]:-}" ]]; then
        (cd "${MODDIR[$name]}" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
          go build -trimpath -ldflags "-s -w ${LDX[$name]:-}" -o "$tmp/$name" .) >&2 || { rm -rf "$tmp"; return 1; }
      else
        GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOBIN="$tmp" \
          go install -trimpath -ldflags "-s -w ${LDX[$name]:-}" "${PKG[$name]}" >&2 || { rm -rf "$tmp"; return 1; }
      fi
      echo "$(( $(date +%s) - start ))" > "$tmp/build-seconds"
      rm -rf "$out" && mv "$tmp" "$out"
      echo "tools.sh: built $name in $(cat "$out/build-seconds")s -> $out/$name" >&2
    fi
    exec 9>&-
  fi
  echo "$out/$name"
}

if [[ $# -eq 1 ]]; then
  build "$1"
else
  for name in helm kubeconform kubectl kstatus; do echo "$name=$(build "$name")"; done
fi
