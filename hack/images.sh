#!/usr/bin/env bash
# Builds the router and operator images from deploy/docker/*.Dockerfile with buildah (no
# Docker engine), exactly as `docker build` would, on a Python base made here from Debian
# packages (mmdebstrap), with pip installing offline from a wheelhouse built on the host.
# Each image is cached by a hash of everything it is made from; a second run builds nothing.
#
#   hack/images.sh              # both images
#   hack/images.sh router       # one
#
# Prints one line per image: "<name> <image ref> <docker-archive path> <size MB>". The
# archives are what the real-node tests import into containerd (`ctr image import`).
#
# Needs root and Debian's buildah + mmdebstrap (installed when root and missing).
# Env: BYOLLM_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/byollm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

SUITE=bookworm
BASE_PACKAGES=python3-minimal,python3,python3-venv,python-is-python3,ca-certificates
root=${BYOLLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/byollm}/images
mkdir -p "$root"
exec 8>"$root/.lock"
flock 8

say() { echo "images.sh: $*" >&2; }
hash_files() { sha256sum "$@" | sha256sum | cut -c1-12; }

if ! command -v buildah >/dev/null || ! command -v mmdebstrap >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing buildah and mmdebstrap from Debian..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah mmdebstrap >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah mmdebstrap >&2; }
  else
    say "buildah and mmdebstrap are needed (apt-get install buildah mmdebstrap, as root)"; exit 3
  fi
fi

# One private image store, so nothing of the machine's own container storage is touched.
BUILDAH=(buildah --root "$root/storage" --runroot "$root/run" --storage-driver vfs)
have_image() { "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# --- 1. the Python base: Debian's python3, nothing else ------------------------------------
# merged-usr hook: /usr merged without the usrmerge package (which pulls in all of perl).
MMDEBSTRAP_OPTS=(
  --variant=essential --include="$BASE_PACKAGES"
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='Acquire::Check-Valid-Until "false"'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*'
)
base_key=$(printf '%s\n' "$SUITE" "${MMDEBSTRAP_OPTS[@]}" | sha256sum | cut -c1-12)
base=localhost/byollm-python:$base_key
if ! have_image "$base"; then
  start=$(date +%s)
  say "making the Python base from Debian $SUITE packages (first run only, ~1-2 min)..."
  tmp=$(mktemp -d)
  mmdebstrap "${MMDEBSTRAP_OPTS[@]}" "$SUITE" "$tmp/base.tar" "http://deb.debian.org/debian" >&2
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$tmp/base.tar" / >&2
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr" >&2
  "${BUILDAH[@]}" commit --rm "$ctr" "$base" >&2
  rm -rf "$tmp"
  for old in $("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '/byollm-python:' | grep -v ":$base_key$"); do
    "${BUILDAH[@]}" rmi "$old" >/dev/null 2>&1 || true
  done
  say "base $base made in $(( $(date +%s) - start ))s"
fi

# --- 2. the wheelhouse: every dependency, built on the host -------------------------------
# (A fresh rootfs lacks this machine's trust store, so pip inside the build runs offline.)
targets=("./router[server]" ./sdk ./operator)
pyprojects=(router/pyproject.toml sdk/pyproject.toml operator/pyproject.toml)
# Keyed by the declared dependencies only (not the rest of pyproject.toml).
wheels_key=$(python3 - "${pyprojects[@]}" <<'PY' | sha256sum | cut -c1-12
import json, sys, tomllib
for f in sys.argv[1:]:
    d = tomllib.load(open(f, "rb"))
    p = d.get("project", {})
    print(json.dumps([d.get("build-system"), p.get("dependencies"), p.get("optional-dependencies")], sort_keys=True))
PY
)
wheels=$root/wheels-$wheels_key
if [[ ! -f $wheels/.complete ]]; then
  start=$(date +%s)
  say "building the wheelhouse on the host (first run only)..."
  rm -rf "$wheels" && mkdir -p "$wheels"
  python3 -m pip wheel -q --wheel-dir "$wheels" "${targets[@]}" "hatchling>=1.25" >&2
  rm -f "$wheels"/byollm*.whl   # our own code is built from the context, never from here
  touch "$wheels/.complete"
  say "wheelhouse made in $(( $(date +%s) - start ))s"
fi
printf '[global]\nno-index = true\nfind-links = /wheels\n' > "$root/pip.conf"

# --- 3. the images, from the Dockerfiles unchanged ----------------------------------------
context_key() {  # the Dockerfile, its ignore file and every file its ignore file lets in
  local df=$1 paths=() p
  while read -r p; do
    p=${p#!}; p=${p%/\*\*}; [[ -e $p ]] && paths+=("$p")
  done < <(grep '^!' "$df.dockerignore")
  { cat "$df" "$df.dockerignore"
    find "${paths[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z \
      | xargs -0 sha256sum
    echo "$base_key $wheels_key"
  } | sha256sum | cut -c1-12
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(router operator)
for name in "${names[@]}"; do
  df=deploy/docker/$name.Dockerfile
  [[ -f $df ]] || { say "no $df"; exit 2; }
  key=$(context_key "$df")
  ref=localhost/byollm/$name:$key
  archive=$root/$name-$key.tar
  if [[ ! -f $archive ]]; then
    start=$(date +%s)
    say "building $ref from $df..."
    "${BUILDAH[@]}" bud --isolation chroot --network host --pull-never --layers=false \
      --build-arg "PYTHON_IMAGE=$base" \
      -v "$wheels:/wheels:ro" -v "$root/pip.conf:/etc/pip.conf:ro" \
      --ignorefile "$df.dockerignore" \
      -f "$df" -t "$ref" "$repo" >&2
    "${BUILDAH[@]}" push "$ref" "docker-archive:$archive.tmp:$ref" >&2
    mv "$archive.tmp" "$archive"
    "${BUILDAH[@]}" rmi "$ref" >/dev/null 2>&1 || true
    "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
    echo "$(( $(date +%s) - start ))" > "$archive.seconds"
    say "built $name in $(cat "$archive.seconds")s"
    # Drop older archives of this image.
    find "$root" -maxdepth 1 -name "$name-*.tar*" ! -name "$name-$key.tar*" -delete
  fi
  size_mb=$(( $(stat -c %s "$archive") / 1000000 ))
  echo "$name $ref $archive $size_mb"
done
