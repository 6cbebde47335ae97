"""Resizing an image of any size window by window, so memory depends on the tile, not the image.

The network sees at most `tile` x `tile` HR pixels at once (`tile / s` LR pixels). Windows
overlap by the network's receptive field (`fgrn_tf.models.receptive_field`) and only the inside
of each is kept, so the tiled result is the untiled one up to float rounding. Sides that are not
multiples of the scale s are reflect-padded on the bottom and right (the LR of H x W is
ceil(H/s) x ceil(W/s)); alpha never enters the network and is resized with the project's MATLAB
bicubic (`fgrn_tf.data.imresize`) at its own bit depth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fgrn_tf.models.image_batch import BatchError
from fgrn_tf.models.receptive_field import margins_for

DEFAULT_TILE = 1024
# MATLAB bicubic reaches 2 LR pixels (down) or 2 LR pixels (up) past a pixel; 4 is ample.
ALPHA_MARGIN = 4


def spans(n: int, window: int, margin: int) -> list[tuple[int, int, int, int]]:
  """Splits [0, n) into kept cores and the windows computed for them.

  Every window has size `min(n, window)` (so all tiles of an image have one shape), and holds
  its core plus `margin` on each side, except where the core touches the image border.

  Returns:
    [(core_start, core_end, window_start, window_end)] covering [0, n) with the cores.
  """
  if window <= 0 or n <= window:
    return [(0, n, 0, n)]
  step = window - 2 * margin
  if step < margin:
    raise ValueError(f"a window of {window} is too small for a margin of {margin} "
                     f"(needs at least {3 * margin})")
  out, a = [], 0
  while a < n:
    b = min(n, a + step if a else window - margin)
    start = min(max(a - margin, 0), n - window)
    out.append((a, b, start, start + window))
    a = b
  return out


def apply_tiled(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, in_unit: int,
                out_unit: int, window: int, margin: int,
                on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
  """Applies a resizing map to an image window by window on a grid of LR pixels.

  Args:
    fn: maps a `[h*in_unit, w*in_unit(, C)]` array to `[h*out_unit, w*out_unit(, C)]`, each
      output pixel depending on input within `margin` grid cells.
    image: `[gh*in_unit, gw*in_unit(, C)]`.
    in_unit, out_unit: pixels per grid cell in input and output (s and 1 to downscale, 1 and s
      to upscale).
    window: largest window in grid cells (0: the whole image at once).
    margin: context kept on each side of a window's core, in grid cells.
    on_tile: called with (tiles done, tiles in all) after each window.

  Returns:
    `[gh*out_unit, gw*out_unit(, C)]`, equal to `fn(image)` when margin covers fn's reach.
  """
  gh, gw = image.shape[0] // in_unit, image.shape[1] // in_unit
  rows, cols = spans(gh, window, margin), spans(gw, window, margin)
  out = None
  i, o = in_unit, out_unit
  for k, ((a, b, wa, wb), (c, d, wc, wd)) in enumerate(
      (r, q) for r in rows for q in cols):
    piece = fn(image[wa * i:wb * i, wc * i:wd * i])
    if out is None:
      out = np.empty((gh * o, gw * o) + piece.shape[2:], piece.dtype)
    out[a * o:b * o, c * o:d * o] = piece[(a - wa) * o:(b - wa) * o, (c - wc) * o:(d - wc) * o]
    if on_tile is not None:
      on_tile(k + 1, len(rows) * len(cols))
  return out


def _window(tile: int, scale: int) -> int:
  return max(tile, 0) // scale


def pad_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
  """Reflect-pads `[H, W(, C)]` on the bottom and right to multiples of `scale`."""
  h, w = image.shape[:2]
  ph, pw = -h % scale, -w % scale
  if not ph and not pw:
    return image
  if h < scale or w < scale:
    raise BatchError(f"{h}x{w} is smaller than the scale {scale}")
  return np.pad(image, [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2), mode="reflect")


def downscale_rgb(backend, rgb: np.ndarray, tile: int = DEFAULT_TILE,
                  on_tile=None) -> np.ndarray:
  """uint8 RGB `[H, W, 3]` of any size -> uint8 LR `[ceil(H/s), ceil(W/s), 3]`."""
  s = backend.scale
  return apply_tiled(lambda x: backend.downscale(x[None])[0], pad_to_multiple(rgb, s), s, 1,
                     _window(tile, s), margins_for(backend)[0], on_tile)


def upscale_rgb(backend, lr: np.ndarray, size: tuple[int, int] | None = None,
                tile: int = DEFAULT_TILE, on_tile=None) -> np.ndarray:
  """uint8 LR `[h, w, 3]` -> uint8 HR `[s*h, s*w, 3]`, cropped to `size` = (H, W) if given."""
  s = backend.scale
  hr = apply_tiled(lambda x: backend.upscale(x[None])[0], lr, 1, s, _window(tile, s),
                   margins_for(backend)[1], on_tile)
  return hr if size is None else hr[:size[0], :size[1]]


def resize_alpha(alpha: np.ndarray, scale: int, up: bool, size: tuple[int, int] | None = None,
                 tile: int = DEFAULT_TILE) -> np.ndarray:
  """MATLAB-bicubic resize of an alpha plane, at its own dtype (rounded and clipped).

  Args:
    alpha: uint8 or uint16 `[H, W]`.
    scale: the model's scale.
    up: False: reflect-pad to a multiple of `scale` and downscale to ceil(H/s) x ceil(W/s);
      True: upscale to s*H x s*W, then crop to `size` when given.
    size: (H, W) to crop an upscaled plane to.
    tile: as for `downscale_rgb`.

  Returns:
    The resized plane, of `alpha`'s dtype.
  """
  from fgrn_tf.data.imresize import bicubic_downscale, bicubic_upscale  # TensorFlow: on use

  top = np.iinfo(alpha.dtype).max
  resize = bicubic_upscale if up else bicubic_downscale

  def fn(x):
    y = resize(x[None, :, :, None].astype(np.float32), scale).numpy()[0, :, :, 0]
    return np.clip(np.round(y), 0, top).astype(alpha.dtype)

  if up:
    out = apply_tiled(fn, alpha, 1, scale, _window(tile, scale), ALPHA_MARGIN)
    return out if size is None else out[:size[0], :size[1]]
  return apply_tiled(fn, pad_to_multiple(alpha, scale), scale, 1, _window(tile, scale),
                     ALPHA_MARGIN)
