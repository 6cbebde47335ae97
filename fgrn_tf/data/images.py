"""Reading and writing image files, and the rules for bad ones.

Every reader in the project (training pipeline, evaluation, command-line tool) goes through
`decode`, so a file is accepted or refused, and converted, the same way everywhere.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ImageError(ValueError):
  """An image file is missing, unreadable, not an image, or of an unusable size."""


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


def decode(path: str | os.PathLike) -> Decoded:
  """Decodes an image file; raises ImageError (naming the file) when it cannot."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ImageError(f"{path}: no such file")
  data = np.fromfile(str(path), dtype=np.uint8)
  if data.size == 0:
    raise ImageError(f"{path}: empty file")
  image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
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
  ok, buf = cv2.imencode(ext, np.ascontiguousarray(array))
  if not ok:
    raise ImageError(f"{path}: could not encode as {ext}")
  return buf.tobytes()


def write_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it into place, so an
  interrupted write never leaves a partial file under the final name."""
  path = pathlib.Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path}: exists (pass --overwrite to replace it)")
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    # mkstemp makes the file owner-only; give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def write_image(path: str | os.PathLike, image: np.ndarray, overwrite: bool = False) -> None:
  """Encodes and atomically writes an RGB(A)/gray uint8 or uint16 image."""
  write_atomic(path, encode(path, image), overwrite=overwrite)


def iter_decoded(paths: Iterable[str]):
  """Yields (path, Decoded or ImageError) without stopping at bad files."""
  for p in paths:
    try:
      yield p, decode(p)
    except ImageError as e:
      yield p, e
