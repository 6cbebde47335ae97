"""The flow guidance module F: exact inverse, correct log-determinant, identity at init."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import random_images, randomize_zero_convs

from fgrn_tf.models.flow import FlowCell, FlowGuidance


def _flow(cells=3, growth=8, seed=0):
  flow = FlowGuidance(cells, 3, growth)
  flow.build((None, None, None, 3))
  randomize_zero_convs(flow, seed, std=0.2)
  return flow


def test_new_flow_is_identity_with_zero_logdet():
  flow = FlowGuidance(3, 3, 8)
  x = random_images(2, 16, 16)
  y, logdet = flow.forward(x)
  np.testing.assert_array_equal(y, x)
  np.testing.assert_array_equal(logdet, np.zeros(2))


@pytest.mark.parametrize("first, second", [("forward", "inverse"), ("inverse", "forward")])
def test_each_direction_undoes_the_other_on_64x64(first, second):
  flow = _flow(seed=3)
  x = random_images(2, 64, 64, seed=1)
  y, _ = getattr(flow, first)(x)
  assert np.abs(y.numpy() - x).max() > 1e-2, "the test needs a non-identity flow"
  back, _ = getattr(flow, second)(y)
  assert np.abs(back.numpy() - x).max() < 1e-5


def test_inverse_logdet_is_minus_forward_logdet():
  flow = _flow(seed=4)
  x = random_images(3, 16, 16, seed=5)
  y, ld_fwd = flow.forward(x)
  _, ld_inv = flow.inverse(y)
  np.testing.assert_allclose(ld_inv.numpy(), -ld_fwd.numpy(), rtol=1e-5, atol=1e-4)


def test_logdet_matches_numerical_jacobian():
  flow = _flow(cells=3, seed=6)
  x = tf.constant(random_images(2, 4, 4, seed=7), dtype=tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y, logdet = flow.forward(x)
  jac = tape.batch_jacobian(y, x).numpy().astype(np.float64).reshape(2, 48, 48)
  _, expected = np.linalg.slogdet(jac)
  assert np.abs(expected).max() > 0.1, "the test needs a volume-changing flow"
  np.testing.assert_allclose(logdet.numpy(), expected, atol=1e-4)


def _changed_channels(layer, x):
  y, _ = layer.forward(x)
  return [bool(np.abs(y.numpy()[..., c] - x[..., c]).max() > 1e-3) for c in range(3)]


@pytest.mark.parametrize("index", range(4))
def test_cell_k_shifts_channel_k_mod_3_and_scales_the_other_two_in_place(index):
  x = random_images(1, 8, 8, seed=index)
  pivot = index % 3
  # Only a (the shift of l1) non-zero: the cell moves its pivot channel alone, in RGB order.
  cell = FlowCell(3, index, growth=4)
  cell.build((None, None, None, 3))
  randomize_zero_convs(cell.a, seed=index, std=0.2)
  assert _changed_channels(cell, x) == [c == pivot for c in range(3)]
  # Only b and p (the scale and shift of l2) non-zero: the pivot passes unchanged.
  cell = FlowCell(3, index, growth=4)
  cell.build((None, None, None, 3))
  randomize_zero_convs(cell.b, seed=index, std=0.2)
  randomize_zero_convs(cell.p, seed=index + 10, std=0.2)
  assert _changed_channels(cell, x) == [c != pivot for c in range(3)]


def test_three_cells_scale_every_channel():
  # A fixed split would leave one channel out of the affine part of every cell.
  flow = FlowGuidance(3, 3, 4)
  flow.build((None, None, None, 3))
  for cell in flow.cells:  # scales and shifts of l2 only
    randomize_zero_convs(cell.b, std=0.2)
    randomize_zero_convs(cell.p, std=0.2)
  assert _changed_channels(flow, random_images(1, 8, 8)) == [True, True, True]


def test_scale_is_bounded_by_clamp():
  cell = FlowCell(3, 0, growth=4, clamp=0.5)
  cell.build((None, None, None, 3))
  randomize_zero_convs(cell, std=50.0)
  x = tf.constant(random_images(1, 8, 8), tf.float32)
  _, logdet = cell.forward(x)
  # 2 scaled channels x 64 pixels, each log-scale within [-clamp, clamp].
  assert abs(float(logdet[0])) <= 0.5 * 2 * 64 + 1e-3


def test_flow_rejects_wrong_channel_count():
  with pytest.raises(ValueError, match=r"3 channels.*\(None, 8, 8, 4\)"):
    FlowGuidance(2, 3, 4).build((None, 8, 8, 4))
