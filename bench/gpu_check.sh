#!/usr/bin/env bash
# One-command GPU check (BUILD.md, "GPU machines"): builds a venv with tensorflow[and-cuda] at
# the pinned version, lists the GPUs TensorFlow sees, and times 200 steps of x2 at the paper's
# batch (36 x 192x192) under MirroredStrategy in float32 and in mixed_float16.
#
#   bash bench/gpu_check.sh            # venv in .venv-gpu (reused when it is there)
#   VENV=/tmp/v STEPS=50 bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
  echo "gpu_check: error: no NVIDIA GPU here (nvidia-smi is missing or lists none)" >&2
  exit 1
fi
nvidia-smi -L
venv="${VENV:-.venv-gpu}"
tf_version="$(sed -n 's/^tensorflow-cpu==//p' requirements.txt)"
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" "tensorflow[and-cuda]==$tf_version"
grep -v '^tensorflow-cpu' requirements.txt > "$venv/requirements-gpu.txt"
"${pip[@]}" -r "$venv/requirements-gpu.txt"
"${pip[@]}" --no-deps -e .
exec "$venv/bin/python" -m bench.gpu_train --steps "${STEPS:-200}" "$@"
