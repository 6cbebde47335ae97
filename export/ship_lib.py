"""Packs a trained run as a shipped model: `models/fgrn_x<s>/`, what the tools load by default.

A shipped model is a training workdir that the command-line tool, `eval_main.py` and
`export_main.py` load like any other (config.json + best.weights.h5), plus its float16 TFLite
halves in `export/` (an export folder with its manifest) and the run's `train_state.json`
(steps, hours). The weights are stored at half precision: the repository holds at most 25 MB of
models, and the float32 x2 + x4 weights with their TFLite halves come to ~30 MB. Keras casts
them back to float32 when loading, and the check below measures what the rounding costs.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Callable

import numpy as np

from export import export_lib

SIZE_LIMIT_BYTES = 25 * 10**6
EXPORT_SUBDIR = "export"
EXPORT_FORMATS = ("tflite_float16",)
KEPT_FILES = ("config.json", "train_state.json")


def half_precision_weights(src: pathlib.Path, dst: pathlib.Path) -> None:
  """Copies a Keras .weights.h5 file with its float32 arrays stored as float16."""
  import h5py

  with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
    for key, value in fin.attrs.items():
      fout.attrs[key] = value

    def copy(name, obj):
      if isinstance(obj, h5py.Dataset):
        data = obj[()]
        if isinstance(data, np.ndarray) and data.dtype == np.float32:
          data = data.astype(np.float16)
        out = fout.create_dataset(name, data=data)
      else:
        out = fout.require_group(name)
      for key, value in obj.attrs.items():
        out.attrs[key] = value

    fin.visititems(copy)


def tree_bytes(folder: pathlib.Path) -> int:
  return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def ship(workdir, dest, check_images, log: Callable[[str], None] = print,
         size_limit: int = SIZE_LIMIT_BYTES) -> dict:
  """Writes `dest` (e.g. models/fgrn_x2) from a training workdir; returns the export manifest.

  `dest` is built beside itself and swapped in at the end, so a failure leaves the shipped
  model that was there before. Raises `export_lib.ExportError` when the check fails or when
  `dest`'s parent folder would exceed `size_limit` bytes.
  """
  from fgrn_tf.workdir import BEST_WEIGHTS, load_model, weights_path

  workdir, dest = pathlib.Path(workdir), pathlib.Path(dest)
  source_weights = weights_path(workdir)
  stage = dest.parent / f".{dest.name}.{os.getpid()}.new"
  shutil.rmtree(stage, ignore_errors=True)
  stage.mkdir(parents=True)
  try:
    for name in KEPT_FILES:
      if (workdir / name).is_file():
        shutil.copy2(workdir / name, stage / name)
    half_precision_weights(source_weights, stage / BEST_WEIGHTS)
    full, half = load_model(workdir), load_model(stage)
    drop = _half_precision_drop(full, half, check_images)
    log(f"half-precision weights: round trip PSNR {drop:+.3f} dB against float32 on "
        f"{len(check_images)} check images")
    manifest = export_lib.export(
        half, stage / EXPORT_SUBDIR, check_images, formats=EXPORT_FORMATS,
        source={"path": str(workdir.resolve()), "weights": source_weights.name,
                "stored_as": "float16"}, log=log)
    others = tree_bytes(dest.parent) - (tree_bytes(dest) if dest.exists() else 0) \
        - tree_bytes(stage)
    total = others + tree_bytes(stage)
    if total > size_limit:
      raise export_lib.ExportError(f"{dest.parent} would hold {total / 1e6:.1f} MB, over the "
                                   f"{size_limit / 1e6:.0f} MB limit")
    old = dest.parent / f".{dest.name}.{os.getpid()}.old"
    if dest.exists():
      dest.rename(old)
    stage.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    log(f"wrote {dest} ({tree_bytes(dest) / 1e6:.1f} MB; {dest.parent} {total / 1e6:.1f} MB)")
    return manifest
  finally:
    shutil.rmtree(stage, ignore_errors=True)


def _half_precision_drop(full, half, check_images) -> float:
  """Round trip PSNR (Y) of `half` minus that of `full`, mean over the check images (dB)."""
  from fgrn_tf.backends import KerasBackend

  ref = export_lib.reference(KerasBackend(full), check_images)
  return -export_lib.agreement(KerasBackend(half), check_images, ref, full.scale)["psnr_drop_db"]
