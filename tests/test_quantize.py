"""Straight-through 8-bit quantization."""

import numpy as np
import tensorflow as tf

from fgrn_tf.models.quantize import clip_quantize, from_uint8, quantize, to_uint8


def test_quantize_rounds_to_the_8bit_grid_and_clamps():
  x = tf.constant([-0.3, 0.0, 0.6 / 255, 0.1, 0.9999, 1.7])
  q = quantize(x).numpy()
  np.testing.assert_allclose(q * 255, np.round(q * 255), atol=1e-4)
  np.testing.assert_allclose(q, [0, 0, 1 / 255, round(25.5) / 255, 1, 1], atol=1e-6)


def test_quantize_gradient_is_the_identity_inside_the_range():
  x = tf.constant([0.01, 0.2, 0.999])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.reduce_sum(quantize(x) * tf.constant([1.0, 2.0, 3.0]))
  np.testing.assert_array_equal(tape.gradient(y, x), [1.0, 2.0, 3.0])


def test_the_training_quantizer_passes_no_gradient_outside_the_range():
  # What FGRN.call applies to Gd's output: out-of-range values get no gradient.
  x = tf.constant([-0.3, 0.2, 1.5])
  with tf.GradientTape() as tape:
    tape.watch(x)
    q = clip_quantize(x)
    y = tf.reduce_sum(q * tf.constant([1.0, 2.0, 3.0]))
  np.testing.assert_array_equal(q, quantize(x))
  np.testing.assert_array_equal(tape.gradient(y, x), [0.0, 2.0, 0.0])


def test_uint8_round_trip_is_exact():
  v = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(to_uint8(from_uint8(v)), v)
  np.testing.assert_array_equal(to_uint8(quantize(from_uint8(v))), v)
