#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler from this Go module; kwok from its own module) with the machine's Go
# toolchain, into a cache keyed by version and by the hash of this folder, and prints the
# bin directory on stdout. A second run finds the cache and builds nothing.
#
#   hack/controlplane/build.sh            # -> ~/.cache/byollm/controlplane/<key>/bin
#
# Env: BYOLLM_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/byollm).
set -euo pipefail

K8S_VERSION=v1.36.3
KWOK_VERSION=v0.8.0
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here"/cmd/*/main.go | sha256sum | cut -c1-12)
root=${BYOLLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/byollm}/controlplane
out=$root/k8s-$K8S_VERSION-kwok-$KWOK_VERSION-$key

complete() { for b in "${BINARIES[@]}"; do [[ -x "$out/bin/$b" ]] || return 1; done; }

mkdir -p "$root"
exec 9>"$root/.lock"
flock 9   # one build at a time, e.g. `byollm dev` and pytest started together
if complete; then echo "$out/bin"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: no Go toolchain on PATH" >&2; exit 3; }
start=$(date +%s)
tmp=$(mktemp -d "$root/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
echo "build.sh: building Kubernetes $K8S_VERSION control plane (first run only, ~5-15 min)..." >&2
(cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" ./cmd/...) >&2
echo "build.sh: building kwok $KWOK_VERSION..." >&2
GOBIN="$tmp/bin" GOFLAGS= go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
rm -rf "$out" && mv "$tmp" "$out" && trap - EXIT
echo "$(( $(date +%s) - start ))" > "$out/build-seconds"
echo "build.sh: built in $(cat "$out/build-seconds")s -> $out/bin" >&2
echo "$out/bin"
