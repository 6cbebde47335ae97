#!/usr/bin/env bash
# One prepared call on a lent GPU machine (Python 3.12 + JAX with CUDA, no TensorFlow, no
# network): installs Keras from the carried wheelhouse if it is missing, then trains.
#   bench/gpu_campaign.sh PRESET INIT_FROM MINUTES [extra flags of bench/gpu_campaign.py]
# Carried (git-ignored, made here by bench/make_carry.sh): carry/wheels, carry/images.
# Results go to $OUT (default ./campaign_out). Fails in one line where there is no GPU
# (pass --allow_cpu to run on a CPU, as the tests do).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${1:?usage: gpu_campaign.sh PRESET INIT_FROM MINUTES [flags]}"
INIT="${2?init weights (a model folder, "shipped", or "" for random)}"
MINUTES="${3:?minutes}"
shift 3
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$PWD/campaign_out}"
CARRY="${CARRY:-$PWD/carry}"
if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(u.find_spec('keras') is None)"; then
  SITE="$CARRY/site"
  "$PYTHON" -m pip install -q --no-index --find-links "$CARRY/wheels" --target "$SITE" keras
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax
exec "$PYTHON" -m bench.gpu_campaign --preset "$PRESET" --init_from "$INIT" --minutes "$MINUTES" \
  --data_dirs "$CARRY/images" --out "$OUT" --workdir "${WORKDIR:-/tmp/campaign_run}" "$@"
