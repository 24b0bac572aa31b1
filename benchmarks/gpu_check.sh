#!/usr/bin/env bash
# GPU check of the AnoGen / DualAnoDiff backends (issue 16): install from the lock, keep the machine's CUDA
# torch, then run benchmarks/gpu_check.py (full SD-1.5 architectures, random weights, 512 px, bf16).
# Writes $OUT/gpu_check.json and $OUT/gpu_check.md when OUT is set. Budget: under 8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from a fresh copy of the tree
#   bash benchmarks/gpu_check.sh --dry-run    # CPU, tiny components, no install (what the tests run)
#   GPU_CHECK_SKIP_INSTALL=1 bash benchmarks/gpu_check.sh   # packages already installed
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
start=$(date +%s)

if [[ "${GPU_CHECK_SKIP_INSTALL:-0}" != 1 && " $* " != *" --dry-run "* ]]; then
  echo "== install requirements.lock minus torch (keeping $("$PYTHON" -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo 'no torch'))"
  lock="$(mktemp "${TMPDIR:-/tmp}/lock-minus-torch.XXXXXX")"
  trap 'rm -f "$lock"' EXIT
  # the lock pins the CPU build torch==2.13.0+cpu: drop torch (and CUDA runtime pieces) so the machine's CUDA
  # build stays; every other package is pinned there, so --no-deps installs exactly the lock
  grep -Ev '^(torch|torchvision|torchaudio|triton|nvidia-[a-z0-9-]+)==' requirements.lock > "$lock"
  if ! "$PYTHON" -m pip install --quiet --no-deps -r "$lock" \
     && ! "$PYTHON" -m pip install --quiet --no-deps --break-system-packages -r "$lock"; then
    echo "== pip install failed (offline machine?); continuing with the installed packages"
  fi
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DVC_NO_ANALYTICS=1 NO_ALBUMENTATIONS_UPDATE=1
"$PYTHON" -c 'import diffusers, peft, transformers, cv2, torch' || { echo "gpu_check: missing packages (see above)"; exit 1; }
left=$(( 470 - ($(date +%s) - start) ))  # stay under 8 minutes in all; the JSON is written after every phase
if (( left < 120 )); then left=120; fi  # a slow install still leaves the check two minutes
echo "== benchmarks/gpu_check.py $* (time left ${left}s)"
exec timeout "${left}" "$PYTHON" benchmarks/gpu_check.py "$@"
