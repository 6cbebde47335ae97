"""What an export reads: the trained model and the images every artifact is checked on.

The model is a training workdir (config.json + weights) or a .keras file; its files are checked
before TensorFlow is imported (`check_model_path`), so a wrong path fails at once. Check and
calibration images default to the run's validation folder, else its training folders, else the
built-in photos; unreadable or too small files are skipped, as training skips them.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from fgrn_tf.data import defaults, images
from fgrn_tf.data.images import read_rgb8
from fgrn_tf.errors import one_line
from fgrn_tf.export import ExportError
from fgrn_tf.metrics.psnr_ssim import mod_crop
from fgrn_tf.workdir import (
  CONFIG,
  ModelNotFoundError,
  WorkdirError,
  load_model,
  read_experiment,
  weights_path,
)


def check_model_path(path) -> bool:
  """Checks that `path` is a training workdir with weights or a .keras file, without loading
  it (no TensorFlow). Returns True for a workdir; ModelNotFoundError or ExportError else."""
  path = pathlib.Path(path)
  if path.is_dir():
    read_config(path)
    weights_path(path)
    return True
  if path.suffix != ".keras" or not path.is_file():
    raise ModelNotFoundError(f"{path}: no such training workdir or .keras file")
  return False


def read_config(workdir):
  """The workdir's `Experiment`; a config.json that does not parse names itself."""
  path = pathlib.Path(workdir) / CONFIG
  try:
    return read_experiment(workdir)
  except FileNotFoundError:
    raise
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    text = f"missing field {e}" if isinstance(e, KeyError) else one_line(e)
    raise ExportError(text if str(path) in text else
                      f"{path}: not a valid training config: {text}") from None


def load_trained(path):
  """An FGRN from a training workdir or a .keras file; errors name the file at fault."""
  path = pathlib.Path(path)
  if path.suffix == ".keras":
    what, file = "the model", path
  else:
    read_config(path)
    what, file = "the weights", weights_path(path)
  try:
    return load_model(path)
  except WorkdirError as e:  # an unusable file: the export's own error, naming it
    text = one_line(e)
    raise ExportError(text if str(file) in text else
                      f"{file}: cannot load {what}: {text}") from None


def image_dirs(workdir) -> list[str]:
  """The folders `default_image_files` reads: the run's validation folder, else its training
  folders, those present on this machine (none: the built-in photos are used)."""
  train = read_config(workdir).train
  if train.val_dir and pathlib.Path(train.val_dir).is_dir():
    return [train.val_dir]
  # A shipped model's recorded folders may not exist on this machine: the built-in photos then.
  return [d for d in train.data_dirs if pathlib.Path(d).is_dir()]


def default_image_files(workdir) -> list[str]:
  """Images to check (and calibrate int8) on: the run's validation folder, else its training
  folders (those present on this machine), else the built-in photos."""
  dirs = image_dirs(workdir)
  if dirs:
    return images.list_images(dirs)
  return defaults.default_image_files()


def _read_images(files: Iterable, scale: int, what: str, limit: int,
                 log: Callable[[str], None] | None, prepare=lambda rgb: rgb) -> list:
  """(path, `prepare`d uint8 image) for the first `limit` files that decode and, once prepared,
  have sides of at least 2 * scale; others are skipped (and logged), as training skips them."""
  files = list(files)
  out, first = [], None
  for path in files:
    if len(out) == limit:
      break
    try:
      rgb = prepare(read_rgb8(path))
    except (ValueError, OSError) as e:  # ImageError (a ValueError) names the file
      reason = str(e) if str(path) in str(e) else f"{path}: {one_line(e)}"
    else:
      if min(rgb.shape[:2]) >= 2 * scale:
        out.append((path, np.ascontiguousarray(rgb)))
        continue
      reason = f"{path}: {rgb.shape[0]}x{rgb.shape[1]} is too small at x{scale}"
    first = first or reason
    if log:
      log(f"skipping {what} image {reason}")
  if not out:
    raise ExportError(f"no usable {what} images among {len(files)} file(s)"
                      + (f"; first: {first}" if first else ""))
  return out


def load_check_images(files: Sequence[str], scale: int, crop: int = 256, limit: int = 5,
                      log: Callable[[str], None] | None = None) -> list[tuple[str, np.ndarray]]:
  """(name, uint8 `[H, W, 3]`) for the first `limit` usable files: centre crops of at most
  `crop` pixels (0 = whole images), mod-cropped to the scale. Unreadable and too small files
  are skipped (told to `log`); ExportError when none is left."""
  def prepare(rgb):
    if crop:
      h, w = rgb.shape[:2]
      top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
      rgb = rgb[top:top + crop, left:left + crop]
    return mod_crop(rgb, scale)

  return [(pathlib.Path(p).name, rgb)
          for p, rgb in _read_images(files, scale, "check", limit, log, prepare)]


def load_calibration_images(files: Sequence[str], scale: int, limit: int = 32,
                            log: Callable[[str], None] | None = None) -> list[np.ndarray]:
  """uint8 `[H, W, 3]` of the first `limit` usable files, to calibrate full-integer int8 on;
  unreadable and too small files are skipped (told to `log`); ExportError when none is left."""
  return [rgb for _, rgb in _read_images(files, scale, "calibration", limit, log)]
