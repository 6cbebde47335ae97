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
# Written by hand (or export/model_card.py) after shipping: kept when a model is shipped again.
MODEL_CARD = "MODEL_CARD.md"
# What a training run leaves that a shipped model never holds.
TRAINING_ONLY = ("last.weights.h5", "backup", "tensorboard")


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


def not_a_shipped_model(folder) -> str | None:
  """Why the non-empty `folder` is not a model `ship` wrote, or None when it is one."""
  from fgrn_tf.workdir import BEST_WEIGHTS, CONFIG

  folder = pathlib.Path(folder)
  names = {p.name for p in folder.iterdir()}
  others = sorted(names - {*KEPT_FILES, BEST_WEIGHTS, MODEL_CARD, EXPORT_SUBDIR})
  training = [n for n in TRAINING_ONLY if n in names]
  if training:
    return f"holds a training workdir ({training[0]})"
  export = folder / EXPORT_SUBDIR
  has_export = export.is_dir() and not export.is_symlink()
  if not has_export and {CONFIG, BEST_WEIGHTS} & names:
    # A shipped model is a workdir plus the export/ that ship writes.
    return f"holds a training workdir without {EXPORT_SUBDIR}/"
  if others or not has_export:
    image = export_lib.an_image(folder)
    if image:
      return f"holds images ({image})"
    return f"holds {others[0] if others else EXPORT_SUBDIR}, which ship does not write"
  reason = export_lib.not_an_export(export) if any(export.iterdir()) else None
  return f"{EXPORT_SUBDIR}/ {reason}" if reason else None


def check_dest(dest) -> None:
  """Refuses a `dest` that ship must not replace (ExportError, one line): anything but a
  missing or empty folder, or a model shipped there before."""
  dest = pathlib.Path(dest)
  if dest.is_symlink():
    raise export_lib.ExportError(f"{dest}: is a symbolic link; give the folder itself")
  if not dest.exists():
    return
  if not dest.is_dir():
    raise export_lib.ExportError(f"{dest}: exists and is not a folder")
  try:
    reason = not_a_shipped_model(dest) if any(dest.iterdir()) else None
  except OSError as e:
    raise export_lib.public_error(e, {}) from None
  if reason:
    raise export_lib.ExportError(f"{dest}: is not a shipped model ({reason}): it is not "
                                 f"replaced; choose another --dest")


def ship(workdir, dest, check_images, log: Callable[[str], None] = print,
         size_limit: int = SIZE_LIMIT_BYTES) -> dict:
  """Writes `dest` (e.g. models/fgrn_x2) from a training workdir; returns the export manifest.

  `dest` is built beside itself and swapped in at the end, so a failure leaves the shipped
  model that was there before. Only a missing or empty folder or an earlier shipped model is
  replaced (`check_dest`); its hand-written MODEL_CARD.md is carried over. Raises
  `export_lib.ExportError` when `dest` is refused, when the check fails, or when `dest`'s parent
  folder would exceed `size_limit` bytes.
  """
  from fgrn_tf.workdir import BEST_WEIGHTS, weights_path

  workdir, dest = pathlib.Path(workdir), pathlib.Path(os.path.abspath(dest))
  source_weights = weights_path(workdir)
  export_lib.check_apart(dest, [("workdir", workdir)], flag="dest")
  check_dest(dest)
  stage = None
  try:
    stage = export_lib.staging_dir(dest, ".new")
    for name in KEPT_FILES:
      if (workdir / name).is_file():
        shutil.copy2(workdir / name, stage / name)
    half_precision_weights(source_weights, stage / BEST_WEIGHTS)
    full, half = export_lib.load_trained(workdir), export_lib.load_trained(stage)
    drop = _half_precision_drop(full, half, check_images)
    log(f"half-precision weights: round trip PSNR {drop:+.3f} dB against float32 on "
        f"{len(check_images)} check images")
    manifest = export_lib.export(
        half, stage / EXPORT_SUBDIR, check_images, formats=EXPORT_FORMATS,
        source={"path": str(workdir.resolve()), "weights": source_weights.name,
                "stored_as": "float16"}, log=log)
    if (dest / MODEL_CARD).is_file():
      shutil.copy2(dest / MODEL_CARD, stage / MODEL_CARD)
      log(f"kept {dest / MODEL_CARD} (written by hand): update it for the new weights "
          f"(export/model_card.py)")
    others = tree_bytes(dest.parent) - (tree_bytes(dest) if dest.exists() else 0) \
        - tree_bytes(stage)
    total = others + tree_bytes(stage)
    if total > size_limit:
      raise export_lib.ExportError(f"{dest.parent} would hold {total / 1e6:.1f} MB, over the "
                                   f"{size_limit / 1e6:.0f} MB limit")
    export_lib.follow_umask(stage)
    check_dest(dest)  # again: it may have changed meanwhile
    export_lib.replace_dir(stage, dest)
    log(f"wrote {dest} ({tree_bytes(dest) / 1e6:.1f} MB; {dest.parent} {total / 1e6:.1f} MB)")
    return manifest
  except (export_lib.ExportError, OSError) as e:  # name dest, not the hidden staging folder
    raise export_lib.public_error(e, {stage: dest} if stage else {}) from None
  finally:
    if stage is not None:
      shutil.rmtree(stage, ignore_errors=True)


def _half_precision_drop(full, half, check_images) -> float:
  """Round trip PSNR (Y) of `half` minus that of `full`, mean over the check images (dB)."""
  from fgrn_tf.backends import KerasBackend

  ref = export_lib.reference(KerasBackend(full), check_images)
  return -export_lib.agreement(KerasBackend(half), check_images, ref, full.scale)["psnr_drop_db"]
