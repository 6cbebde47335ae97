"""fgrn_tf/tiling.py and models/receptive_field.py: windows that cover an image once, margins
that are the network's exact reach, tiled results equal to untiled ones, reflect padding."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import photo, tiny_model

from fgrn_tf.metrics import psnr_ssim
from fgrn_tf.models import receptive_field
from fgrn_tf.rescale import tiling
from fgrn_tf.runtime.backends import KerasBackend


@pytest.fixture(scope="module")
def backend():
  return KerasBackend(tiny_model(seed=3))


@pytest.mark.parametrize("n,window,margin", [(10, 0, 3), (10, 20, 3), (100, 30, 10), (97, 31, 9),
                                             (64, 33, 11), (1000, 512, 43)])
def test_spans_cover_every_pixel_once_with_context(n, window, margin):
  spans = tiling.spans(n, window, margin)
  covered = np.zeros(n, int)
  for a, b, start, stop in spans:
    covered[a:b] += 1
    assert stop - start == min(n, window) if window else n
    assert 0 <= start <= a < b <= stop <= n
    assert a - start >= margin or start == 0
    assert stop - b >= margin or stop == n
  assert (covered == 1).all()


def test_spans_refuse_windows_too_small_for_the_margin():
  with pytest.raises(ValueError, match="too small"):
    tiling.spans(100, 20, 10)


def _reach(fn, shape, at):
  """How far (in output pixels, Chebyshev) the effect of changing one input pixel spreads."""
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, (1,) + shape + (3,)).astype(np.float32)
  y = x.copy()
  y[0, at[0], at[1]] += 0.5
  diff = np.abs(fn(tf.constant(y)).numpy() - fn(tf.constant(x)).numpy()).max(axis=(0, 3))
  rows, cols = np.nonzero(diff > 0)
  return diff, rows, cols


def test_receptive_margins_match_the_network():
  model = tiny_model(seed=1)
  rng = np.random.default_rng(1)
  for v in model.weights:  # large random weights, so an effect is not lost in float32 sums
    v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
  down, up = receptive_field.receptive_margins(model.model_config)
  s = model.scale
  # Downscale, before quantization (rounding can hide a change but never spread it).
  gd = lambda x: model.flow.forward(model.downscaler(x))[0]  # noqa: E731
  size = 2 * down + 9
  _, rows, cols = _reach(gd, (s * size, s * size), (s * (size // 2), s * (size // 2)))
  assert max(abs(rows - size // 2).max(), abs(cols - size // 2).max()) == down
  gu = lambda x: model.upscaler(model.flow.inverse(x)[0])  # noqa: E731
  size = 2 * up + 9
  _, rows, cols = _reach(gu, (size, size), (size // 2, size // 2))
  lr_rows, lr_cols = rows // s, cols // s
  assert max(abs(lr_rows - size // 2).max(), abs(lr_cols - size // 2).max()) == up


def test_tiled_round_trip_equals_untiled(backend):
  hr = photo(331, 297, seed=1)
  tile = receptive_field.min_tile(backend.scale, receptive_field.model_config_of(backend))
  margin = max(receptive_field.margins_for(backend))
  assert len(tiling.spans(hr.shape[0] // 2, tile // 2, margin)) > 2
  whole = tiling.upscale_rgb(backend, tiling.downscale_rgb(backend, hr, tile=0), hr.shape[:2],
                             tile=0)
  lr = tiling.downscale_rgb(backend, hr, tile=tile)
  tiled = tiling.upscale_rgb(backend, lr, hr.shape[:2], tile=tile)
  assert tiled.shape == whole.shape == hr.shape
  p_whole, p_tiled = psnr_ssim.psnr_y(hr, whole, 2), psnr_ssim.psnr_y(hr, tiled, 2)
  assert abs(p_whole - p_tiled) < 0.01
  # Float rounding in different window shapes may move a value across a rounding boundary.
  assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
  assert (tiled != whole).mean() < 1e-3


def test_tiled_alpha_equals_untiled():
  alpha = photo(203, 171, seed=2, channels=1)[:, :, 0]
  for up in (False, True):
    whole = tiling.resize_alpha(alpha, 2, up=up, tile=0)
    tiled = tiling.resize_alpha(alpha, 2, up=up, tile=40)
    np.testing.assert_array_equal(tiled, whole)


def test_tile_must_hold_three_margins(backend):
  m = max(receptive_field.margins_for(backend))
  smallest = receptive_field.min_tile(backend.scale, receptive_field.model_config_of(backend))
  assert smallest == backend.scale * 3 * m
  with pytest.raises(ValueError, match="too small"):
    tiling.downscale_rgb(backend, photo(400, 400), tile=smallest - 4)


def test_padding_reflects_the_last_rows_and_columns():
  x = np.arange(15).reshape(3, 5)
  padded = tiling.pad_to_multiple(x, 2)
  assert padded.shape == (4, 6)
  np.testing.assert_array_equal(padded[3], x[1].tolist() + [x[1, 3]])
  np.testing.assert_array_equal(padded[:3, 5], x[:, 3])
  with pytest.raises(ValueError, match="smaller than the scale"):
    tiling.pad_to_multiple(np.zeros((1, 5)), 2)
