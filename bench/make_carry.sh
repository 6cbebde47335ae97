#!/usr/bin/env bash
# Makes what bench/gpu_campaign.sh needs on a machine without a package registry, in the
# git-ignored carry/: wheels/ (keras and what it imports beyond what that machine has, for
# CPython 3.12, plus this Python's own for a test here) and images/ (the training images as
# lossless WebP: T91 + BSD200 are 40.5 MB, so the whole carry stays under 64 MiB).
#   bench/make_carry.sh IMAGE_FOLDER [IMAGE_FOLDER ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
KERAS="$(grep '^keras==' requirements.txt)"
mkdir -p carry/wheels carry/images
for pyver in 312 "$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"; do
  "$PY" -m pip download -q -d carry/wheels --only-binary=:all: --python-version "$pyver" \
    "$KERAS" namex optree rich markdown-it-py mdurl pygments packaging ml-dtypes h5py \
    typing-extensions
done
"$PY" - "$@" <<'PYEOF'
import pathlib, sys
import cv2
from fgrn_tf.data import images
out = pathlib.Path("carry/images")
for folder in sys.argv[1:]:
  for path in images.list_images([folder]):
    rgb = images.read_rgb8(path)
    name = f"{pathlib.Path(folder).name}_{pathlib.Path(path).stem}.webp"
    ok, data = cv2.imencode(".webp", rgb[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 101])
    (out / name).write_bytes(data.tobytes())
print(f"{len(list(out.glob('*.webp')))} images,",
      f"{sum(p.stat().st_size for p in out.glob('*.webp')) / 1e6:.1f} MB in {out}")
PYEOF
du -sh carry/wheels carry/images
