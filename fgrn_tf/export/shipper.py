"""Packs a trained run as a shipped model: `fgrn_tf/shipped_models/fgrn_x<s>/` (package data,
bundled in the wheel), what the tools load by default.

A shipped model is a training workdir that the command-line tool, `fgrn-eval` and `fgrn-export`
load like any other (config.json + best.weights.h5), plus its float16 TFLite halves in
`export/` (an export folder with its manifest) and the run's `train_state.json` (steps, hours).
The weights are stored at half precision: the repository holds at most 25 MB of models, and the
float32 x2 + x4 weights with their TFLite halves come to ~30 MB. Keras casts them back to
float32 when loading, and the check below measures what the rounding costs.

`--formats none` ships the weights without TFLite halves (export/ then holds the manifest
alone): the paper-sized models' halves are 3.8 MB (x2) and 7.7 MB (x4), and with the
codec-aware models beside them the budget holds weights only; `fgrn-export` writes the halves
from the shipped folder in a minute.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Callable

from fgrn_tf.data import images
from fgrn_tf.export import ExportError, exporter, folders, inputs
from fgrn_tf.export.agreement import agreement, reference
from fgrn_tf.runtime.backends import KerasBackend
from fgrn_tf.runtime.shipped import CARD as MODEL_CARD
from fgrn_tf.runtime.shipped import CARD_DIR, default_model_path
from fgrn_tf.workdir import BEST_WEIGHTS, CONFIG, half_precision_weights, weights_path

SIZE_LIMIT_BYTES = 25 * 10**6
EXPORT_SUBDIR = "export"
EXPORT_FORMATS = ("tflite_float16",)
NO_FORMATS = "none"  # the weights alone
KEPT_FILES = ("config.json", "train_state.json")
# What a training run leaves that a shipped model never holds.
TRAINING_ONLY = ("last.weights.h5", "backup", "tensorboard")


def tree_bytes(folder: pathlib.Path) -> int:
  return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def not_a_shipped_model(folder) -> str | None:
  """Why the non-empty `folder` is not a model `ship` wrote, or None when it is one."""
  folder = pathlib.Path(folder)
  names = {p.name for p in folder.iterdir()}
  others = sorted(names - {*KEPT_FILES, BEST_WEIGHTS, MODEL_CARD, CARD_DIR, EXPORT_SUBDIR})
  training = [n for n in TRAINING_ONLY if n in names]
  if training:
    return f"holds a training workdir ({training[0]})"
  export = folder / EXPORT_SUBDIR
  has_export = export.is_dir() and not export.is_symlink()
  if not has_export and {CONFIG, BEST_WEIGHTS} & names:
    # A shipped model is a workdir plus the export/ that ship writes.
    return f"holds a training workdir without {EXPORT_SUBDIR}/"
  if others or not has_export:
    image = folders.an_image(folder)
    if image:
      return f"holds images ({image})"
    return f"holds {others[0] if others else EXPORT_SUBDIR}, which ship does not write"
  reason = folders.not_an_export(export) if any(export.iterdir()) else None
  return f"{EXPORT_SUBDIR}/ {reason}" if reason else None


def check_dest(dest) -> None:
  """Refuses a `dest` that ship must not replace (ExportError, one line): anything but a
  missing or empty folder, or a model shipped there before."""
  dest = pathlib.Path(dest)
  folders.check_replaceable(dest, not_a_shipped_model,
                            lambda reason: f"{dest}: is not a shipped model ({reason}): it is "
                                           f"not replaced; choose another --output_dir")


def ship_path(workdir, dest=None, check_dir=None, check_count: int = 5,
              log: Callable[[str], None] = print, formats=EXPORT_FORMATS) -> dict:
  """Ships the run at `workdir` (what `fgrn-ship` does); returns the export manifest.

  The run's files and the destination are checked before TensorFlow is imported.

  Args:
    workdir: the training workdir (its best weights are shipped).
    dest: the folder to write; default the bundled fgrn_x<scale> (`shipped.default_model_path`).
    check_dir: images to check the shipped files on (default: the run's validation folder,
      else its training images).
    check_count: how many check images to use.
    log: receives one progress line per step.
    formats: the TFLite formats to ship (`exporter.FORMATS` names, or one comma-separated
      string), or "none" for the weights alone; the SavedModel is never shipped (its size).
  """
  with folders.reported():
    formats = () if formats == NO_FORMATS else exporter.parse_formats(formats)
    if "savedmodel" in formats:
      raise ExportError("the SavedModel is not shipped (export it with fgrn-export)")
    scale = inputs.read_config(workdir).model.scale
    weights_path(workdir)
    dest = pathlib.Path(dest or default_model_path(scale))
    # What is read must not be what is replaced: checked before any work is done.
    read = [("--workdir", workdir), ("--check_dir", check_dir)]
    if not check_dir:
      read += [("run's image folder", d) for d in inputs.image_dirs(workdir)]
    folders.check_apart(dest, read, flag="--output_dir", containers={"--model"})
    check_dest(dest)
    files = (images.list_images(check_dir) if check_dir
             else inputs.default_image_files(workdir))
    check = inputs.load_check_images(files, scale, limit=check_count, log=log)
    return ship(workdir, dest, check, log=log, formats=formats)


def ship(workdir, dest, check_images, log: Callable[[str], None] = print,
         size_limit: int = SIZE_LIMIT_BYTES, formats=EXPORT_FORMATS) -> dict:
  """Writes `dest` (e.g. fgrn_tf/shipped_models/fgrn_x2) from a training workdir; returns the
  export manifest.

  `dest` is built beside itself and swapped in at the end, so a failure leaves the shipped
  model that was there before. Only a missing or empty folder or an earlier shipped model is
  replaced (`check_dest`); its MODEL_CARD.md (written by hand or by `model_card`, after
  shipping) is carried over.

  Raises:
    ExportError: `dest` is refused, the check fails, or `dest`'s parent folder would exceed
      `size_limit` bytes.
  """
  workdir, dest = pathlib.Path(workdir), pathlib.Path(os.path.abspath(dest))
  source_weights = weights_path(workdir)
  folders.check_apart(dest, [("workdir", workdir)], flag="dest", containers={"workdir"})
  check_dest(dest)

  def build(stage: pathlib.Path) -> tuple[dict, int]:
    for name in KEPT_FILES:
      if (workdir / name).is_file():
        shutil.copy2(workdir / name, stage / name)
    half_precision_weights(source_weights, stage / BEST_WEIGHTS)
    full, half = inputs.load_trained(workdir), inputs.load_trained(stage)
    drop = _half_precision_drop(full, half, check_images)
    log(f"half-precision weights: round trip PSNR {drop:+.3f} dB against float32 on "
        f"{len(check_images)} check images")
    manifest = exporter.export(
        half, stage / EXPORT_SUBDIR, check_images, formats=tuple(formats),
        source={"path": str(workdir.resolve()), "weights": source_weights.name,
                "stored_as": "float16"}, log=log)
    if (dest / MODEL_CARD).is_file():
      shutil.copy2(dest / MODEL_CARD, stage / MODEL_CARD)
      log(f"kept {dest / MODEL_CARD} (written by hand): update it for the new weights "
          f"(export/model_card.py)")
    if (dest / CARD_DIR).is_dir():
      shutil.copytree(dest / CARD_DIR, stage / CARD_DIR)
    others = tree_bytes(dest.parent) - (tree_bytes(dest) if dest.exists() else 0) \
        - tree_bytes(stage)
    total = others + tree_bytes(stage)
    if total > size_limit:
      raise ExportError(f"{dest.parent} would hold {total / 1e6:.1f} MB, over the "
                        f"{size_limit / 1e6:.0f} MB limit")
    return manifest, total

  # Checked again before the swap: it may have changed meanwhile.
  manifest, total = folders.build_in_place(dest, build, recheck=lambda: check_dest(dest),
                                           suffix=".new")
  log(f"wrote {dest} ({tree_bytes(dest) / 1e6:.1f} MB; {dest.parent} {total / 1e6:.1f} MB)")
  return manifest


def _half_precision_drop(full, half, check_images) -> float:
  """Round trip PSNR (Y) of `half` minus that of `full`, mean over the check images (dB)."""
  ref = reference(KerasBackend(full), check_images)
  return -agreement(KerasBackend(half), check_images, ref, full.scale)["psnr_drop_db"]
