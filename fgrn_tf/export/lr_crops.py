"""The model card's LR pictures: a window of a model's LR at 1:1 beside the bicubic LR's.

A rescaling model's LR is an image people look at, so its card shows it, not only PSNR: for
each image, the LR window (128x128 by default) where the model's LR is furthest from
MATLAB-bicubic's (RMS over RGB), bicubic on the left, the model's on the right, pixels 1:1.
The worst window, not a chosen one: colour speckle shows where it is strongest.
"""

from __future__ import annotations

import pathlib

import numpy as np

from fgrn_tf.data import images
from fgrn_tf.data.imresize import bicubic_uint8
from fgrn_tf.metrics.psnr_ssim import mod_crop
from fgrn_tf.runtime import backends

GAP = 4  # white pixels between the two crops


def worst_window(a: np.ndarray, b: np.ndarray, size: int) -> tuple[int, int]:
  """(top, left) of the `size` window, on a grid of half its size, where RGB `a` and `b`
  differ most (RMS)."""
  h, w = a.shape[:2]
  size = min(size, h, w)
  err = np.square(a.astype(np.float64) - b.astype(np.float64)).sum(-1)
  step = max(1, size // 2)
  tops = sorted({*range(0, h - size + 1, step), h - size})
  lefts = sorted({*range(0, w - size + 1, step), w - size})
  return max(((top, left) for top in tops for left in lefts),
             key=lambda at: err[at[0]:at[0] + size, at[1]:at[1] + size].sum())


def side_by_side(bicubic_lr: np.ndarray, model_lr: np.ndarray, size: int = 128) -> np.ndarray:
  """uint8 RGB: the worst `size` window of `bicubic_lr` | a white gap | the same of `model_lr`."""
  top, left = worst_window(bicubic_lr, model_lr, size)
  size = min(size, *bicubic_lr.shape[:2])
  crops = [im[top:top + size, left:left + size] for im in (bicubic_lr, model_lr)]
  gap = np.full((size, GAP, 3), 255, np.uint8)
  return np.concatenate([crops[0], gap, crops[1]], axis=1)


def write_crops(model, image_paths, out_dir, size: int = 128) -> list[pathlib.Path]:
  """Writes `out_dir`/<image stem>.png (`side_by_side`) per image; returns the paths.

  Args:
    model: anything `backends.load_backend` loads (a shipped model's folder).
    image_paths: HR images (mod-cropped to the model's scale).
    out_dir: the folder to write (made if missing; files in it are replaced).
    size: the window's side in LR pixels.
  """
  backend = backends.load_backend(model)
  written = []
  for path in image_paths:
    hr = mod_crop(images.read_rgb8(path), backend.scale)
    figure = side_by_side(bicubic_uint8(hr, backend.scale), backend.downscale(hr[None])[0], size)
    target = pathlib.Path(out_dir) / f"{pathlib.Path(path).stem}.png"
    images.write_image(target, figure, overwrite=True)
    written.append(target)
  return written
