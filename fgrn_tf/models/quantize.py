"""8-bit straight-through quantization (as in IRN, used by FGRN for x and for the LR image)."""

from __future__ import annotations

import tensorflow as tf


def quantize(x: tf.Tensor) -> tf.Tensor:
  """Clamps to [0, 1] and rounds to multiples of 1/255; the gradient is the identity.

  Args:
    x: float tensor of any shape, nominally in [0, 1].

  Returns:
    A tensor of the same shape and dtype whose values lie on the 8-bit grid. The identity
    gradient (also outside [0, 1], as IRN's `Quant.backward`) lets Gd learn through rounding.
  """
  q = tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0
  return x + tf.stop_gradient(q - x)


def to_uint8(x: tf.Tensor) -> tf.Tensor:
  """Float image in [0, 1] -> uint8, rounding to nearest and saturating."""
  # Not tf.saturate_cast: it lowers to tf.ClipByValue, which is no TFLite builtin (the export
  # would need Flex); clip_by_value on a float with scalar bounds lowers to MINIMUM + RELU.
  return tf.cast(tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0), tf.uint8)


def from_uint8(x: tf.Tensor) -> tf.Tensor:
  """uint8 image -> float32 in [0, 1]."""
  return tf.cast(x, tf.float32) / 255.0
