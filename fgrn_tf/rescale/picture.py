"""An image file as the rescale tool handles it: colour for the network, alpha, gray, 16 bits,
and the HR size an LR PNG records.

- Gray images are processed as RGB with 3 equal channels and written with one channel (the
  rounded mean of the three).
- Alpha is not seen by the network: it is resized with the project's MATLAB bicubic
  (`fgrn_tf.rescale.tiling.resize_alpha`) at its own bit depth and re-attached.
- 16-bit images: colour goes through the network at 8 bits (what it was trained on), and is
  written back as 16-bit (v * 257), so a 16-bit input gives a 16-bit output; alpha keeps its
  16 bits through the bicubic resize.
- Size record. A PNG LR records the HR H x W in a text chunk (`fgrn:hr-size`, with
  `fgrn:scale`), and `upscale_picture` crops its s*h x s*w result back to it; an LR without
  that record (other formats, other tools) is upscaled to s*h x s*w.
- Scale record. `upscale_picture` refuses an LR whose `fgrn:scale` is not the model's: an x2
  LR upscaled by an x4 model is a wrong image of a plausible size.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fgrn_tf.data import images, pngtext
from fgrn_tf.models.image_batch import BatchError
from fgrn_tf.rescale.tiling import DEFAULT_TILE, downscale_rgb, resize_alpha, upscale_rgb

HR_SIZE_KEY = "fgrn:hr-size"
SCALE_KEY = "fgrn:scale"


@dataclasses.dataclass
class Picture:
  """An image as the tool handles it.

  Attributes:
    rgb: uint8 `[H, W, 3]`, what the network sees.
    alpha: uint8 or uint16 `[H, W]`, or None.
    gray: written with one colour channel.
    bit_depth: 8 or 16, the depth written.
    hr_size: for an LR picture, the (H, W) of the HR image it stands for, if known.
    scale: for an LR picture, the scale of the model that made it, if known.
  """

  rgb: np.ndarray
  alpha: np.ndarray | None = None
  gray: bool = False
  bit_depth: int = 8
  hr_size: tuple[int, int] | None = None
  scale: int | None = None

  @classmethod
  def read(cls, path) -> Picture:
    """Decodes a file (ImageError names it when it cannot), with its recorded HR size and
    scale."""
    d = images.decode(path)
    size, scale = read_record(path)
    return cls(images.to_uint8(d.rgb), d.alpha, d.gray, d.bit_depth, size, scale)

  def file_array(self) -> np.ndarray:
    """The array to encode: gray `[H, W]` or RGB(A) `[H, W, 3|4]`, uint8 or uint16."""
    colour = self.rgb
    if self.gray and self.alpha is None:
      colour = np.round(colour.mean(axis=2, dtype=np.float32)).astype(np.uint8)
    if self.bit_depth == 16:
      colour = colour.astype(np.uint16) * np.uint16(257)
    if self.alpha is None:
      return colour
    alpha = self.alpha
    if alpha.dtype != colour.dtype:  # depths of colour and alpha match in any decoded file
      alpha = images.to_uint8(alpha) if colour.dtype == np.uint8 else alpha.astype(np.uint16) * 257
    return np.dstack([colour, alpha])

  def rgb8_as_written(self) -> np.ndarray:
    """uint8 RGB `[H, W, 3]` as a reader of the written file gets it (gray re-expanded)."""
    if not self.gray:
      return self.rgb
    g = np.round(self.rgb.mean(axis=2, dtype=np.float32)).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def read_record(path) -> tuple[tuple[int, int] | None, int | None]:
  """(HR size, scale) a PNG LR records; None for what it does not record, or records badly."""
  text = pngtext.read_text(path)
  try:
    h, w = (int(v) for v in text[HR_SIZE_KEY].split("x"))
    size = (h, w)
  except (KeyError, ValueError):
    size = None
  try:
    scale = int(text[SCALE_KEY])
  except (KeyError, ValueError):
    scale = None
  return size, scale if scale is None or scale >= 2 else None


def _scale_refusal(recorded: int, scale: int) -> str:
  return (f"made by an x{recorded} model ({SCALE_KEY}={recorded}), but the model is x{scale}; "
          f"upscale it with an x{recorded} model")


def scale_mismatch(path, scale: int) -> str | None:
  """The one-line refusal when the LR at `path` records another scale than `scale`, else None
  (also for a file that records none). Reads only the PNG chunks before the image data."""
  recorded = read_record(path)[1]
  if recorded is None or recorded == scale:
    return None
  return f"{path}: {_scale_refusal(recorded, scale)}"


def downscale_picture(backend, hr: Picture, tile: int = DEFAULT_TILE, on_tile=None) -> Picture:
  """HR picture -> LR picture (ceil(H/s) x ceil(W/s)) that records the HR size."""
  s = backend.scale
  lr = downscale_rgb(backend, hr.rgb, tile, on_tile)
  alpha = None if hr.alpha is None else resize_alpha(hr.alpha, s, up=False, tile=tile)
  return Picture(lr, alpha, hr.gray, hr.bit_depth, hr_size=hr.rgb.shape[:2], scale=s)


def upscale_picture(backend, lr: Picture, tile: int = DEFAULT_TILE, on_tile=None) -> Picture:
  """LR picture -> HR picture: s*h x s*w, or the recorded HR size when it fits this LR size.

  Raises:
    ValueError: the picture records another scale than the backend's.
  """
  s = backend.scale
  if lr.scale is not None and lr.scale != s:
    raise BatchError(_scale_refusal(lr.scale, s))
  h, w = lr.rgb.shape[:2]
  size = lr.hr_size
  if size is not None and (math.ceil(size[0] / s), math.ceil(size[1] / s)) != (h, w):
    size = None  # recorded for another scale or before the image was edited: not ours to trust
  hr = upscale_rgb(backend, lr.rgb, size, tile, on_tile)
  alpha = None if lr.alpha is None else resize_alpha(lr.alpha, s, up=True, size=size, tile=tile)
  return Picture(hr, alpha, lr.gray, lr.bit_depth)


def encode_picture(path, picture: Picture, scale: int | None = None) -> bytes:
  """Encoded file bytes for `path`'s format; a PNG LR (with `scale`) records its HR size."""
  data = images.encode(path, picture.file_array())
  if scale is not None and picture.hr_size is not None and data.startswith(pngtext.SIGNATURE):
    h, w = picture.hr_size
    data = pngtext.add_text(data, {HR_SIZE_KEY: f"{h}x{w}", SCALE_KEY: str(scale)})
  return data
