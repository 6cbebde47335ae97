"""The few places FGRN's model code needs its backend's own ops, behind backend-neutral names.

The model is written in `keras.ops` and runs on TensorFlow and JAX. Four things `keras.ops`
does not give in a form that serves both: the pixel shuffles that TFLite should see as builtins
(`pixel_shuffle`), a random draw from a seed computed inside the step (Keras' random functions
take only ints and SeedGenerators as seeds), a shape check of a batch whose size is known only
when a graph runs (a SavedModel with a dynamic signature), and a split whose sizes are
constants in a TensorFlow graph (`split`). Each imports its backend lazily:
importing the model never imports TensorFlow on JAX, nor JAX on TensorFlow.
"""

from __future__ import annotations

import itertools

import keras


def tensorflow():
  """The `tensorflow` module when Keras runs on it, else None."""
  if keras.backend.backend() != "tensorflow":
    return None
  import tensorflow as tf  # already imported by Keras' TensorFlow backend

  return tf


def stateless_uniform(shape, seed: tuple):
  """Uniform float32 draws in [0, 1) from `seed`, a pair of ints or int tensors (the same
  draws whenever the pair is the same, in graph and eager mode alike)."""
  tf = tensorflow()
  if tf is not None:
    return tf.random.stateless_uniform(shape, tf.stack([tf.cast(s, tf.int64) for s in seed]))
  import jax

  key = jax.numpy.stack([jax.numpy.asarray(s).astype("uint32") for s in seed])
  return jax.random.uniform(key, shape, "float32")


def assert_sides_divisible(images, scale: int, message: str):
  """`images` `[N, H, W, C]`, with a check at run time that H and W are multiples of `scale`
  where they are unknown when the graph is built (TensorFlow only: JAX shapes are static)."""
  tf = tensorflow()
  if tf is None:
    return images
  with tf.control_dependencies([tf.debugging.assert_equal(tf.shape(images)[1:3] % scale, 0,
                                                          message=message)]):
    return tf.identity(images)


def split(x, sizes: list[int], axis: int = -1) -> list:
  """`x` cut along `axis` into pieces of `sizes` (Python ints that add up to its size), as one
  split: its gradient is one concat, where each slice's gradient is a zero-padded full-size
  tensor.

  On TensorFlow, `keras.ops.split` turns split points into sizes with graph ops (slices, a
  difference, a concat: ~15 ops a call, and a DenseBlock splits 9 times: its 4 activations and
  5 kernels), traced again by every train step, export and SavedModel load; `tf.split` takes
  the sizes as one constant.
  """
  tf = tensorflow()
  if tf is not None:
    return tf.split(x, sizes, axis=axis)
  return keras.ops.split(x, list(itertools.accumulate(sizes[:-1])), axis=axis)


def shape_list(x) -> list | None:
  """The static shape of `x` as a list (None sizes unknown), None for an unknown rank."""
  shape = x.shape
  if getattr(shape, "rank", 0) is None:
    return None
  return list(shape)
