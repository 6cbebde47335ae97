"""Reading and writing image files, and the rules for bad ones.

Every reader in the project (training pipeline, evaluation, command-line tool) goes through
`decode`, so a file is accepted or refused, and converted, the same way everywhere.

A file whose header claims more than `max_pixels()` pixels is refused before anything is read
or decoded: a few bytes can claim 100000x100000, and decoding that would take all memory.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import struct
import sys
from collections.abc import Sequence

import numpy as np
import PIL.Image

from fgrn_tf import files
from fgrn_tf.errors import FGRNError, one_line

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# The most pixels (height x width) a file may have. The command-line tool tiles the network, so
# it could rescale far bigger images, but the decoder needs the whole file in memory and makes
# the whole image at once (as do training's cache and evaluation): 2**27 pixels is 384 MiB as
# 8-bit RGB, 1 GiB as 16-bit RGBA, before any copy. That passes any camera's photo (a 100 MP
# medium-format frame is 11648x8736) and a 30000x30000 PNG (900 M pixels, which ran past 5.9 GB
# and 500 s in the CLI) needs the limit raised on purpose.
DEFAULT_MAX_PIXELS = 2**27
MAX_PIXELS_ENV = "FGRN_MAX_PIXELS"
# OpenCV refuses, with an exception, headers over its own ceiling, which it reads from this
# variable (default 2**30) once, when cv2 is imported. cv2 is therefore imported on first use,
# after the entry points have set our limit, so that raising ours can raise its ceiling too.
OPENCV_MAX_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"
OPENCV_DEFAULT_MAX_PIXELS = 2**30

# Pillow reads only headers here (cv2 decodes). Its own "decompression bomb" check, a warning over
# 89 M pixels and an error over 179 M, would stop a header before ours is compared at the limit
# the user chose, so it is off; the project decodes no file through Pillow.
PIL.Image.MAX_IMAGE_PIXELS = None

_max_pixels: int | None = None  # set by set_max_pixels (an entry point's flag)
_flag: str | None = None  # that flag's name, for the hint in errors


class ImageError(FGRNError, ValueError):
  """An image file is missing, unreadable, not an image, or of an unusable size."""


def set_max_pixels(limit: int | None, flag: str | None = None) -> None:
  """Sets the most pixels a file may have; entry points call it with their flag before decoding.

  Args:
    limit: the limit; None: $FGRN_MAX_PIXELS, else DEFAULT_MAX_PIXELS.
    flag: the option that sets it (e.g. "--max_pixels"), named in errors as the way to raise it.
  """
  global _max_pixels, _flag
  if limit is not None and limit < 1:
    raise ValueError(f"the pixel limit must be at least 1, not {limit}")
  _max_pixels, _flag = limit, flag
  if "cv2" not in sys.modules:
    _raise_opencv_ceiling()


def max_pixels() -> int:
  """The limit in force: set_max_pixels's, else $FGRN_MAX_PIXELS, else DEFAULT_MAX_PIXELS.

  Raises ValueError for an environment value that is not a whole number >= 1.
  """
  if _max_pixels is not None:
    return _max_pixels
  raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
  if not raw:
    return DEFAULT_MAX_PIXELS
  try:
    value = int(raw)
  except ValueError:
    value = 0
  if value < 1:
    raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels >= 1")
  return value


def _raise_opencv_ceiling() -> None:
  """Lifts OpenCV's ceiling to our limit where ours is higher; only works before cv2 starts."""
  try:
    limit = max_pixels()
  except ValueError:
    return  # decode reports it
  if limit > OPENCV_DEFAULT_MAX_PIXELS and OPENCV_MAX_PIXELS_ENV not in os.environ:
    os.environ[OPENCV_MAX_PIXELS_ENV] = str(limit)


def _cv2():
  if "cv2" not in sys.modules:
    _raise_opencv_ceiling()
  import cv2

  return cv2


# Keras imports cv2 when it starts, so a program that imports this module first gets OpenCV's
# ceiling raised from $FGRN_MAX_PIXELS here; entry points call set_max_pixels before Keras too.
if "cv2" not in sys.modules:
  _raise_opencv_ceiling()


# What Pillow raises on odd or damaged headers (UnidentifiedImageError is an OSError; some
# plugins raise SyntaxError or struct.error on bad fields).
PILLOW_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)


def _header_size(path: pathlib.Path) -> tuple[int, int] | None:
  """(height, width) from the file's header, or None when Pillow does not know the file."""
  try:
    with PIL.Image.open(path) as im:  # reads the header only
      width, height = im.size
  except PILLOW_ERRORS:  # not Pillow's to judge: the decoder then does
    return None
  return height, width


def _check_size(path: pathlib.Path, size: tuple[int, int]) -> None:
  try:
    limit = max_pixels()
  except ValueError as e:
    raise ImageError(f"{path}: {e}") from None
  h, w = size
  if h * w > limit:
    how = f"{_flag} or {MAX_PIXELS_ENV}" if _flag else MAX_PIXELS_ENV
    raise ImageError(f"{path}: {h}x{w} is {h * w:,} pixels, over the limit of {limit:,}; "
                     f"raise it with {how}")


def _opencv_refusal(path: pathlib.Path, size: tuple[int, int] | None, error: Exception) -> str:
  """One line for an exception from cv2.imdecode."""
  what = f"{size[0]}x{size[1]}" if size else "its size"
  found = re.search(r"CV_IO_MAX_IMAGE_(PIXELS|WIDTH|HEIGHT)", str(error))
  if found:
    var = f"OPENCV_IO_MAX_IMAGE_{found.group(1)}"
    also = f" (or {MAX_PIXELS_ENV}, which raises it too)" if found.group(1) == "PIXELS" else ""
    return (f"{path}: {what} is over OpenCV's own limit; set {var}{also} in the environment "
            f"before starting to raise it")
  return f"{path}: OpenCV could not decode it ({one_line(error)})"


@dataclasses.dataclass(frozen=True)
class Decoded:
  """A decoded file as stored, in RGB(A) order.

  Attributes:
    rgb: uint8 or uint16 `[H, W, 3]` (gray is expanded to 3 equal channels).
    alpha: same dtype `[H, W]`, or None.
    gray: True when the file had one colour channel.
    bit_depth: 8 or 16.
  """

  rgb: np.ndarray
  alpha: np.ndarray | None
  gray: bool
  bit_depth: int


def check_header(path: str | os.PathLike) -> tuple[int, int] | None:
  """Raises ImageError when the header's size is over the pixel limit; reads only the header.

  Returns:
    (height, width), or None when Pillow does not know the format (the decoder then judges).
  """
  path = pathlib.Path(path)
  size = _header_size(path)
  if size is not None:
    _check_size(path, size)
  return size


def decode(path: str | os.PathLike) -> Decoded:
  """Decodes an image file; raises ImageError (naming the file) when it cannot."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ImageError(f"{path}: no such file")
  size = check_header(path)
  data = np.fromfile(str(path), dtype=np.uint8)
  if data.size == 0:
    raise ImageError(f"{path}: empty file")
  cv2 = _cv2()
  try:
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
  except cv2.error as e:  # e.g. a size over OpenCV's own limits: one line, not a traceback
    raise ImageError(_opencv_refusal(path, size, e)) from None
  if image is None or image.size == 0:
    raise ImageError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
  if image.dtype not in (np.uint8, np.uint16):
    raise ImageError(f"{path}: unsupported sample type {image.dtype} (8- or 16-bit only)")
  alpha = None
  if image.ndim == 2 or image.shape[2] == 1:
    gray = True
    image = image.reshape(image.shape[:2])
    rgb = np.repeat(image[:, :, None], 3, axis=2)
  elif image.shape[2] in (3, 4):
    gray = False
    if image.shape[2] == 4:
      alpha = image[:, :, 3]
    rgb = np.ascontiguousarray(image[:, :, 2::-1])  # BGR(A) -> RGB
  else:
    raise ImageError(f"{path}: {image.shape[2]} channels; expected 1, 3 or 4")
  return Decoded(rgb=rgb, alpha=alpha, gray=gray,
                 bit_depth=16 if image.dtype == np.uint16 else 8)


def to_uint8(image: np.ndarray) -> np.ndarray:
  """16-bit samples -> 8-bit (round(v * 255 / 65535)); 8-bit unchanged."""
  if image.dtype == np.uint8:
    return image
  return np.round(image.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)


def read_rgb8(path: str | os.PathLike) -> np.ndarray:
  """Reads any image as uint8 RGB `[H, W, 3]`: gray -> RGB, alpha dropped, 16-bit -> 8-bit."""
  return to_uint8(decode(path).rgb)


def list_images(folders: Sequence[str | os.PathLike] | str, recursive: bool = True) -> list[str]:
  """Sorted image files (by extension) under the folders; ImageError if a folder is missing
  or holds none."""
  if isinstance(folders, (str, os.PathLike)):
    folders = [folders]
  files: list[str] = []
  for folder in folders:
    folder = pathlib.Path(folder)
    if not folder.is_dir():
      raise ImageError(f"{folder}: no such folder")
    pattern = "**/*" if recursive else "*"
    found = sorted(str(p) for p in folder.glob(pattern)
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not found:
      raise ImageError(f"{folder}: holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    files.extend(found)
  return files


def encode(path: str | os.PathLike, image: np.ndarray) -> bytes:
  """Encodes an RGB(A) or gray uint8/uint16 array in the format of `path`'s extension."""
  array = np.asarray(image)
  if array.ndim == 3 and array.shape[2] in (3, 4):
    order = [2, 1, 0, 3][:array.shape[2]]
    array = array[:, :, order]  # RGB(A) -> BGR(A)
  ext = pathlib.Path(path).suffix.lower() or ".png"
  ok, buf = _cv2().imencode(ext, np.ascontiguousarray(array))
  if not ok:
    raise ImageError(f"{path}: could not encode as {ext}")
  return buf.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray, overwrite: bool = False) -> None:
  """Encodes and atomically writes (`fgrn_tf.files`) an RGB(A)/gray uint8 or uint16 image."""
  files.write_bytes(path, encode(path, image), overwrite=overwrite)
