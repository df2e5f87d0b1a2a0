#!/usr/bin/env bash
# Builds the parts of a real test node with the machine's Go toolchain and C compiler, each
# into its own cache folder keyed by version and source hash, and prints "name=path" lines.
# A second run finds the cache and builds nothing; the control plane's cache is not touched.
#
#   kubelet, kube-proxy  the same Go wrapper module as the control plane (hack/controlplane),
#                        mains in hack/controlplane/node/; built with a private copy of its
#                        go.mod (-modfile) so the control plane's key does not change
#   kube-router          NetworkPolicy enforcement (firewall mode only), from its Go module
#   coredns              cluster DNS, from its Go module
#   pause                the pod sandbox image's one binary, a static C program
#
#   hack/node/build.sh            # all parts
#   hack/node/build.sh kubelet    # one part (kubelet and kube-proxy are built together)
#
# Env: BYOLLM_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/byollm).
set -euo pipefail

K8S_VERSION=v1.36.3
KUBE_ROUTER_VERSION=v2.1.0
COREDNS_VERSION=v1.15.0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cp_dir=$(cd "$here/../controlplane" && pwd)
root=${BYOLLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/byollm}/node
mkdir -p "$root"
export GOTOOLCHAIN=local CGO_ENABLED=0

hash_of() { cat "$@" | sha256sum | cut -c1-12; }

key_kubelet=$(hash_of "$cp_dir/go.mod" "$cp_dir/go.sum" "$cp_dir"/node/*/main.go "$here/build.sh")
declare -A OUT=(
  [kubelet]="$root/kubelet-$K8S_VERSION-$key_kubelet"
  [kube-router]="$root/kube-router-$KUBE_ROUTER_VERSION"
  [coredns]="$root/coredns-$COREDNS_VERSION"
  [pause]="$root/pause-$(hash_of "$here/pause.c")"
)
declare -A BINS=([kubelet]="kubelet kube-proxy" [kube-router]=kube-router [coredns]=coredns [pause]=pause)

complete() { local b; for b in ${BINS[$1]}; do [[ -x "${OUT[$1]}/$b" ]] || return 1; done; }

build_kubelet() {  # $1: output dir
  local minor=${K8S_VERSION#v1.} tmpmod
  minor=${minor%%.*}
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  tmpmod=$(mktemp -d)
  cp "$cp_dir/go.mod" "$cp_dir/go.sum" "$tmpmod/"
  (cd "$cp_dir" && go build -mod=mod -modfile="$tmpmod/go.mod" -trimpath -ldflags "$ldflags" \
    -o "$1/" ./node/kubelet ./node/kube-proxy)
  rm -rf "$tmpmod"
}
build_kube-router() {
  GOBIN="$1" GOFLAGS= go install -trimpath -ldflags "-s -w" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
}
build_coredns() {
  GOBIN="$1" GOFLAGS= go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}
build_pause() {
  command -v gcc >/dev/null || { echo "build.sh: no gcc for the pause binary" >&2; return 3; }
  gcc -Os -static -o "$1/pause" "$here/pause.c" && strip "$1/pause"
}

build() {  # build <part>: prints name=path lines, builds once
  local part=$1 out=${OUT[$1]}
  if ! complete "$part"; then
    exec 9>"$root/.lock-$part"
    flock 9
    if ! complete "$part"; then
      command -v go >/dev/null || { echo "build.sh: no Go toolchain on PATH" >&2; return 3; }
      local start tmp
      start=$(date +%s)
      tmp=$(mktemp -d "$root/build.XXXXXX")
      echo "node/build.sh: building $part (first run only)..." >&2
      "build_$part" "$tmp" >&2 || { rm -rf "$tmp"; echo "node/build.sh: $part failed" >&2; return 1; }
      echo "$(( $(date +%s) - start ))" > "$tmp/build-seconds"
      rm -rf "$out" && mv "$tmp" "$out"
      echo "node/build.sh: built $part in $(cat "$out/build-seconds")s -> $out" >&2
    fi
    exec 9>&-
  fi
  local b
  for b in ${BINS[$part]}; do echo "$b=$out/$b"; done
}

if [[ $# -ge 1 ]]; then
  for part in "$@"; do build "$part"; done
else
  for part in pause coredns kube-router kubelet; do build "$part"; done
fi
