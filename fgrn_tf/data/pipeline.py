"""The training input pipeline: files -> cached decode -> random HR patches -> dihedral
augmentation -> batches of HR patches (FGRN, Li et al., BMVC 2021, sec. 4.1).

Files are decoded once at start, in parallel, through `images.decode` (so bad files are found
and counted before training begins) and kept in memory when they fit; otherwise they are
decoded again on the fly. Patch positions and augmentations are drawn from a generator
seeded by (seed, worker, element index), so a seed gives the same batches however the map is
parallelised, and a resumed run continues the very stream an uninterrupted one would have read.
Batches are HR alone: the model computes its bicubic target from them (`FGRN.guidance_target`),
the one data format every `tf.distribute` strategy accepts (docs/training.md, "One data path").
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

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


def dihedral(image, k):
  """One of the 8 symmetries of the square: rotate by `k % 4` quarter turns, then flip left-right
  when `k >= 4`. image: `[H, W, C]` (or `[N, H, W, C]`); k: int scalar in [0, 8)."""
  rotated = tf.image.rot90(image, k % 4)
  return tf.cond(k >= 4, lambda: tf.image.flip_left_right(rotated), lambda: rotated)


def _dihedral_pair(pair):
  return dihedral(pair[0], pair[1])


def _patch_sampler(image_set: ImageSet, patch: int, per_call: int):
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


def training_dataset(image_set: ImageSet, scale: int, batch_size: int, patch_size: int,
                     seed: int = 0, worker_index: int = 0, start_step: int = 0
                     ) -> tf.data.Dataset:
  """An endless dataset of training batches.

  Args:
    image_set: from `load_images` (every image at least `patch_size` on each side).
    scale: rescaling factor s; `patch_size` must be a multiple of it.
    batch_size: patches per batch (the global batch; strategies split it).
    patch_size: HR patch side P.
    seed: the same seed gives the same batches.
    worker_index: this worker under MultiWorkerMirroredStrategy; each draws its own patches.
    start_step: the batch to start at; a resumed run gets the batches an uninterrupted one
      would have had (exactly, when the images are cached in memory).

  Returns:
    HR batches `[B, P, P, 3]`, float32 in [0, 1].
  """
  if patch_size % scale:
    raise DataError(f"patch size {patch_size} is not a multiple of the scale {scale}")
  per_call = 1 if image_set.cached else STREAM_PATCHES_PER_DECODE
  sample = _patch_sampler(image_set, patch_size, per_call)

  # No AutoGraph: nothing here needs it, and it reparses source files (which may have changed
  # under a run that lasts days).
  @tf.autograph.experimental.do_not_convert
  def augmented(element):
    key = tf.stack([tf.constant(seed, tf.int64), tf.constant(worker_index, tf.int64), element])
    hr, ks = tf.numpy_function(sample, [key], (tf.uint8, tf.int32), stateful=False)
    hr = tf.ensure_shape(hr, [per_call, patch_size, patch_size, 3])
    ks = tf.ensure_shape(ks, [per_call])
    return tf.map_fn(_dihedral_pair, (hr, ks), fn_output_signature=tf.uint8)

  # Element i's patches depend only on (seed, worker, i): parallel maps and resumes agree.
  ds = tf.data.Dataset.counter(start=start_step * batch_size // per_call)
  if per_call == 1:
    ds = ds.map(tf.autograph.experimental.do_not_convert(lambda i: augmented(i)[0]),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  else:
    ds = ds.interleave(
        tf.autograph.experimental.do_not_convert(
            lambda i: tf.data.Dataset.from_tensor_slices(augmented(i))),
        cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.shuffle(4 * per_call * max(batch_size, 1), seed=seed)
  ds = ds.batch(batch_size, drop_remainder=True)

  @tf.autograph.experimental.do_not_convert
  def to_float(hr8):
    return tf.cast(hr8, tf.float32) / 255.0

  ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  options = tf.data.Options()
  # Each worker draws its own random patches; sharding a random stream would only discard work.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def constant_dataset(batch) -> tf.data.Dataset:
  """The same batch forever: the input-free baseline for measuring pipeline overhead."""
  return tf.data.Dataset.from_tensors(batch).repeat()


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
