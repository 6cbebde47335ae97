"""The one check of an image batch given to FGRN's halves, with the same words on every backend.

Keras (`FGRN.downscale`/`upscale`), the SavedModel and the .tflite files all take uint8
`[N, H, W, 3]` with H and W multiples of the scale for the downscaler; a wrong batch gets the
same one-line BatchError wherever it is run. NumPy only, so the TFLite path imports no TF.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fgrn_tf.errors import FGRNError


class BatchError(FGRNError, ValueError):
  """An image batch FGRN cannot take (dtype, shape, empty, sides the scale does not divide)."""


def not_multiple(name: str, scale: int) -> str:
  """The message for sides that are not multiples of the scale (also the graph assertion's)."""
  return f"{name} height and width must be multiples of the scale {scale}"


def check_shape(shape: Sequence[int | None] | None, dtype: str, name: str,
                scale: int | None = None, expected: str = "uint8") -> None:
  """Raises BatchError (one line) unless `shape` and `dtype` describe an `[N, H, W, 3]` batch.

  Args:
    shape: the batch's shape, None for an unknown rank; None sizes (unknown inside a
      `tf.function`) pass, the caller checks them when they are known.
    dtype: the batch's dtype name ("uint8", "float32").
    name: how the message names the batch ("downscale input").
    scale: H and W must be multiples of it (the downscaler's input); None: any size.
    expected: the dtype name the batch must have.
  """
  text = "<unknown>" if shape is None else str(tuple(shape))
  if dtype != expected:
    raise BatchError(f"{name} must be {expected} [N, H, W, 3]; received dtype {dtype} with "
                     f"shape {text}")
  if shape is None or len(shape) != 4 or shape[-1] != 3:
    raise BatchError(f"{name} must have shape [N, H, W, 3] (RGB batch); received {text}")
  if min((d for d in shape[:3] if d is not None), default=1) < 1:
    raise BatchError(f"{name} is empty: shape {text}")
  h, w = shape[1:3]
  if scale is not None and h is not None and w is not None and (h % scale or w % scale):
    raise BatchError(f"{not_multiple(name, scale)}; received {h}x{w} (crop or pad to "
                     f"{h - h % scale}x{w - w % scale})")


def check_batch(images, name: str, scale: int | None = None) -> np.ndarray:
  """`images` as a uint8 `[N, H, W, 3]` array; BatchError with one clear line otherwise.

  Args:
    images: an array-like batch.
    name: how the message names it.
    scale: with it, H and W must be multiples of it (the downscaler's input).

  Returns:
    `np.asarray(images)`.
  """
  images = np.asarray(images)
  check_shape(images.shape, images.dtype.name, name, scale)
  return images
