"""manifest.json of an export: what it holds, how to call it, how closely it matches Keras.

`backends.load_backend` reads it to find the artifacts; `folders.not_an_export` recognises an
export by its `format`; `summary` is what `fgrn-export` prints.
"""

from __future__ import annotations

import datetime
import json
import pathlib

import numpy as np

from fgrn_tf import files
from fgrn_tf.runtime.backends import MANIFEST

MANIFEST_FORMAT = "fgrn-export/1"
# The order the manifest's top-level keys are written in (others follow).
_KEYS = ("format", "model_name", "version", "scale", "exported_at", "source", "inputs",
         "bytes_inputs", "model_config", "check_set", "artifacts")


def describe(model, check_images: list[tuple[str, np.ndarray]], artifacts: dict) -> dict:
  """The manifest of `model`'s export (without model_name, version and source).

  Args:
    model: the exported `FGRN`.
    check_images: (name, uint8 `[H, W, 3]`) the artifacts were compared on.
    artifacts: format name -> its entry (paths, sizes, agreement).
  """
  scale = model.scale
  return {
      "format": MANIFEST_FORMAT,
      "exported_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
      "scale": scale,
      "model_config": model.model_config.to_dict(),
      "objective": model.objective.to_dict(),
      "inputs": {
          "downscale": {"input": "hr", "output": "lr", "dtype": "uint8",
                        "shape": [None, None, None, 3],
                        "constraint": f"RGB, H and W multiples of {scale}; output "
                                      f"[N, H/{scale}, W/{scale}, 3]"},
          "upscale": {"input": "lr", "output": "hr", "dtype": "uint8",
                      "shape": [None, None, None, 3],
                      "constraint": f"RGB, any h and w; output [N, {scale}h, {scale}w, 3]"},
      },
      **_bytes_inputs(scale, artifacts),
      "check_set": {"images": [n for n, _ in check_images],
                    "sizes": [list(im.shape[:2]) for _, im in check_images],
                    "psnr": f"Y of YCbCr (BT.601), {scale} border pixels cropped, mean over "
                            f"images (100 dB stands for identical)"},
      "artifacts": artifacts,
  }


def _bytes_inputs(scale: int, artifacts: dict) -> dict:
  """The bytes signatures' entries of "inputs", when the SavedModel was written."""
  serving = artifacts.get("savedmodel", {}).get("serving")
  if not serving:
    return {}
  cap = f"at most {serving['max_pixels']} HR pixels each (larger: INVALID_ARGUMENT)"
  files = "string [N] of PNG, JPEG, BMP or WebP files, any sizes"
  return {"bytes_inputs": {
      "downscale_bytes": {"input": "hr_bytes", "output": "lr_bytes", "dtype": "string",
                          "shape": [None],
                          "constraint": f"{files}, {cap}; output {serving['lr_format']} "
                                        f"files of ceil(H/{scale}) x ceil(W/{scale})"},
      "upscale_bytes": {"input": "lr_bytes", "output": "hr_bytes", "dtype": "string",
                        "shape": [None],
                        "constraint": f"{files}, {cap}; output png files of {scale}h x "
                                      f"{scale}w, or the HR size a PNG LR records"}}}


def write(folder: pathlib.Path, manifest: dict) -> None:
  """`folder`/manifest.json, its keys in reading order (strict JSON: no NaN)."""
  ordered = {k: manifest[k] for k in _KEYS if k in manifest} | manifest
  files.write_text(folder / MANIFEST, json.dumps(ordered, indent=2, allow_nan=False) + "\n")


def summary(manifest: dict) -> list[str]:
  """One line per artifact: size, agreement with Keras (for the export's output)."""
  lines = []
  for name, a in manifest["artifacts"].items():
    g = a["agreement"]
    mark = f"  SKIPPED: {a['skipped']}" if "skipped" in a else ""
    lines.append(f"{name:17s} {a['bytes'] / 1e6:7.2f} MB  max diff down/up "
                 f"{g['downscale_max_abs_diff']}/{g['upscale_max_abs_diff']} levels  round trip "
                 f"{g['roundtrip_psnr_y']:.2f} dB (Keras {g['keras_roundtrip_psnr_y']:.2f}, "
                 f"drop {g['psnr_drop_db']:+.2f}){mark}")
  return lines
