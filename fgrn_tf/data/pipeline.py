"""The training input pipeline on TensorFlow: the seeded patch stream of `fgrn_tf.data.patches`
as a tf.data.Dataset of HR batches (FGRN, Li et al., BMVC 2021, sec. 4.1).

Batches are HR alone: the model computes its bicubic target from them (`FGRN.guidance_target`),
the one data format every `tf.distribute` strategy accepts (docs/training.md, "One data path").
"""

from __future__ import annotations

import tensorflow as tf

from fgrn_tf.data.patches import STREAM_PATCHES_PER_DECODE, ImageSet, check_patch, patch_sampler


def dihedral(image, k):
  """One of the 8 symmetries of the square: rotate by `k % 4` quarter turns, then flip left-right
  when `k >= 4`. image: `[H, W, C]` (or `[N, H, W, C]`); k: int scalar in [0, 8)."""
  rotated = tf.image.rot90(image, k % 4)
  return tf.cond(k >= 4, lambda: tf.image.flip_left_right(rotated), lambda: rotated)


def _dihedral_pair(pair):
  return dihedral(pair[0], pair[1])


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
  check_patch(scale, patch_size)
  per_call = 1 if image_set.cached else STREAM_PATCHES_PER_DECODE
  sample = patch_sampler(image_set, patch_size, per_call)

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


