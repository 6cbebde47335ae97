"""Training images without TensorFlow: files -> cached decode -> seeded random HR patches with
dihedral augmentation, as NumPy batches (FGRN, Li et al., BMVC 2021, sec. 4.1).

Files are decoded once at start, in parallel, through `images.decode` (so bad files are found
and counted before training begins) and kept in memory when they fit; otherwise they are
decoded again on the fly. Patch positions and augmentations are drawn from a generator seeded
by (seed, worker, element index), so a seed gives the same patches however the work is
parallelised, and a resumed run continues the very stream an uninterrupted one would have read.
`numpy_batches` is the stream the JAX backend trains on; `fgrn_tf.data.pipeline` wraps the same
sampler in tf.data for TensorFlow, and with cached images both give the same batches.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import logging
import os
from collections.abc import Iterator

import numpy as np

from fgrn_tf.data import defaults, images
from fgrn_tf.data.defaults import default_image_files
from fgrn_tf.errors import FGRNError

log = logging.getLogger(__name__)

# Patches drawn from each decode when images do not fit in memory (amortises the decode).
STREAM_PATCHES_PER_DECODE = 8
# Fixed seed for choosing held-out validation images: the same images whatever --seed is.
HOLDOUT_SEED = 20211122


class DataError(FGRNError, ValueError):
  """Training or validation data is missing or unusable (one line, naming the cause)."""


@dataclasses.dataclass
class ImageSet:
  """Decoded training images and what was skipped.

  Attributes:
    paths: the usable files.
    shapes: `(H, W)` of each usable file.
    arrays: uint8 RGB `[H, W, 3]` per file when cached in memory, else None (streamed).
    bad: `(path, reason)` of files that could not be decoded.
    too_small: files smaller than the patch in either dimension.
  """

  paths: list[str]
  shapes: list[tuple[int, int]]
  arrays: list[np.ndarray] | None
  bad: list[tuple[str, str]]
  too_small: list[str]

  @property
  def cached(self) -> bool:
    return self.arrays is not None

  def summary(self) -> str:
    mode = "cached in memory" if self.cached else "decoded on the fly (too big for memory)"
    return (f"{len(self.paths)} training images ({mode}); skipped {len(self.bad)} unreadable, "
            f"{len(self.too_small)} smaller than the patch")


def available_memory_bytes() -> int:
  """Physical memory not in use now (0 when the platform does not say)."""
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return 0


def resolve_files(data_dirs) -> list[str]:
  """Image files under the folders, or the built-in images when there are none.

  Raises DataError (one line) for a missing folder or one without images.
  """
  if not data_dirs:
    try:
      return default_image_files()
    except FileNotFoundError as e:
      raise DataError(str(e)) from None
  try:
    return images.list_images(list(data_dirs))
  except images.ImageError as e:
    raise DataError(f"training data: {e}") from None


def holdout_split(files: list[str], count: int) -> tuple[list[str], list[str]]:
  """Splits files into (train, held-out) with `count` held out, the same for every seed."""
  if count <= 0:
    return list(files), []
  if count >= len(files):
    raise DataError(f"cannot hold {count} validation images out of {len(files)} training "
                    f"images; pass --val_images smaller or --val_dir")
  order = np.random.default_rng(HOLDOUT_SEED).permutation(len(files))
  held = sorted(files[i] for i in order[:count])
  held_set = set(held)
  return [f for f in files if f not in held_set], held


def _decode_one(path: str):
  try:
    return images.read_rgb8(path), None
  except images.ImageError as e:
    return None, str(e)
  except (OSError, ValueError) as e:  # cv2 or numpy on a file that vanished or is odd
    return None, f"{path}: {e}"


def load_images(paths: list[str], min_size: int, cache_limit_bytes: int | None = None,
                workers: int | None = None) -> ImageSet:
  """Decodes every file once (in parallel), skipping and counting bad and too-small ones.

  Args:
    paths: image files.
    min_size: smallest usable height and width (the HR patch side).
    cache_limit_bytes: keep decoded images in memory while they total less than this
      (default: half the free memory); beyond it they are decoded again on the fly.
    workers: decoding threads (default: the number of CPUs).

  Returns:
    An ImageSet. Raises DataError when no usable image is left.
  """
  if cache_limit_bytes is None:
    cache_limit_bytes = available_memory_bytes() // 2 or (4 << 30)
  kept_paths, shapes, arrays = [], [], []
  bad, too_small = [], []
  total = 0
  cached = True
  with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
    for path, (rgb, error) in zip(paths, pool.map(_decode_one, paths), strict=True):
      if rgb is None:
        log.warning("skipping unreadable training file: %s", error)
        bad.append((path, error))
        continue
      h, w = rgb.shape[:2]
      if h < min_size or w < min_size:
        too_small.append(path)
        continue
      kept_paths.append(path)
      shapes.append((h, w))
      if cached:
        total += rgb.nbytes
        if total > cache_limit_bytes:
          cached = False
          arrays = []
        else:
          arrays.append(rgb)
  if bad:
    log.warning("skipped %d unreadable training file(s) of %d", len(bad), len(paths))
  if too_small:
    log.warning("skipped %d training image(s) smaller than %dx%d", len(too_small), min_size,
                min_size)
  if not kept_paths:
    raise DataError(f"no usable training image among {len(paths)} file(s): {len(bad)} "
                    f"unreadable, {len(too_small)} smaller than {min_size}x{min_size}")
  return ImageSet(kept_paths, shapes, arrays if cached else None, bad, too_small)


def dihedral_np(image: np.ndarray, k: int) -> np.ndarray:
  """One of the 8 symmetries of the square, as `pipeline.dihedral`: rotate by `k % 4` quarter
  turns (counter-clockwise), then flip left-right when `k >= 4`. image: `[H, W, C]`."""
  rotated = np.rot90(image, k % 4, axes=(0, 1))
  return rotated[:, ::-1] if k >= 4 else rotated


def patch_sampler(image_set: ImageSet, patch: int, per_call: int):
  """A numpy function `(seed, worker, element) -> (patches [per_call, P, P, 3] uint8,
  dihedral k [per_call])`: the same key always gives the same patches."""
  shapes = np.asarray(image_set.shapes)

  def sample(key):
    rng = np.random.default_rng([int(k) for k in key])
    index = int(rng.integers(len(shapes)))
    if image_set.arrays is not None:
      image = image_set.arrays[index]
    else:
      image = images.read_rgb8(image_set.paths[index])
    h, w = image.shape[:2]
    out = np.empty((per_call, patch, patch, 3), np.uint8)
    for i in range(per_call):
      top, left = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
      out[i] = image[top:top + patch, left:left + patch]
    return out, rng.integers(8, size=per_call).astype(np.int32)

  return sample


def check_patch(scale: int, patch_size: int) -> None:
  if patch_size % scale:
    raise DataError(f"patch size {patch_size} is not a multiple of the scale {scale}")


def numpy_batches(image_set: ImageSet, scale: int, batch_size: int, patch_size: int,
                  seed: int = 0, worker_index: int = 0, start_step: int = 0,
                  threads: int = 2, lookahead: int = 4) -> Iterator[np.ndarray]:
  """An endless stream of training batches as NumPy arrays, for backends without tf.data.

  Arguments as `pipeline.training_dataset`; batch b holds patches b*B .. (b+1)*B - 1 of the
  seeded stream, each a function of (seed, worker, its index) alone, so `threads` build the next
  `lookahead` batches in parallel and the stream is the same however many there are.

  Yields:
    uint8 `[B, P, P, 3]` HR batches (the step converts them to float: a quarter of the bytes
    to move to an accelerator).
  """
  check_patch(scale, patch_size)
  per_call = 1 if image_set.cached else STREAM_PATCHES_PER_DECODE
  sample = patch_sampler(image_set, patch_size, per_call)

  def batch(index: int) -> np.ndarray:
    out = np.empty((batch_size, patch_size, patch_size, 3), np.uint8)
    first = index * batch_size
    element, drawn = None, None
    for j in range(batch_size):
      e, offset = divmod(first + j, per_call)
      if e != element:
        element, drawn = e, sample((seed, worker_index, e))
      out[j] = dihedral_np(drawn[0][offset], int(drawn[1][offset]))
    return out

  with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
    pending = [pool.submit(batch, b) for b in range(start_step, start_step + lookahead)]
    for b in itertools.count(start_step + lookahead):
      yield pending.pop(0).result()
      pending.append(pool.submit(batch, b))


def validation_images(paths: list[str], scale: int, crop: int = 0) -> tuple[list, list[str]]:
  """Validation HR images: centre crops of at most `crop` (0 = whole), mod-cropped to the scale.

  Returns:
    (list of uint8 `[H, W, 3]` with H, W multiples of the scale, list of skipped files with
    the reason). Files that cannot be decoded or are smaller than `4 * scale` are skipped.
  """
  kept, skipped = [], []
  for path in paths:
    rgb, error = _decode_one(path)
    if rgb is None:
      log.warning("skipping unreadable validation file: %s", error)
      skipped.append(error)
      continue
    h, w = rgb.shape[:2]
    th, tw = (min(h, crop), min(w, crop)) if crop else (h, w)
    th, tw = th - th % scale, tw - tw % scale
    if th < 4 * scale or tw < 4 * scale:
      skipped.append(f"{path}: {h}x{w} is too small to validate at x{scale}")
      continue
    top, left = (h - th) // 2, (w - tw) // 2
    kept.append(np.ascontiguousarray(rgb[top:top + th, left:left + tw]))
  return kept, skipped


def load_training_and_validation(train, scale: int) -> tuple[ImageSet, list]:
  """The training ImageSet and validation HR arrays of a recipe (a `config.TrainConfig`).

  Training images come from `train.data_dirs` (else the built-in ones); validation images from
  `train.val_dir`, else `train.val_images` of the training files held out. Raises DataError
  (one line) before any model is built.
  """
  if train.data_dirs:
    files = resolve_files(train.data_dirs)
    train_files, held = (files, []) if train.val_dir else holdout_split(files, train.val_images)
  else:
    try:
      train_files, held = ((defaults.default_image_files(), []) if train.val_dir
                           else defaults.default_split(train.val_images))
    except FileNotFoundError as e:
      raise DataError(str(e)) from None
  if train.val_dir:
    try:
      held = images.list_images([train.val_dir])
    except images.ImageError as e:
      raise DataError(f"validation data: {e}") from None
  image_set = load_images(train_files, train.patch_size)
  val, skipped = validation_images(held, scale, train.val_crop)
  if held and not val:
    raise DataError(f"none of the {len(held)} validation images is usable: {skipped[0]}")
  return image_set, val
