"""NIQE as MATLAB's `niqe`: known values, the block layout, and "undefined" instead of a number."""

import math

import numpy as np
import pytest

from fgrn_tf.data.images import read_rgb8
from fgrn_tf.metrics.niqe import _aggd, block_features, default_params_path, load_niqe_params, niqe
from fgrn_tf.metrics.psnr_ssim import rgb_to_y


@pytest.fixture(scope="module")
def params(niqe_params_path):
  return load_niqe_params(niqe_params_path)


def _texture(h, w, seed=0):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  img = 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(0, 8, (h, w))
  return np.clip(np.round(img), 0, 255)


def test_baboon_matches_matlab_value(data_root, params):
  # BasicSR quotes MATLAB R2021a `niqe` on the Y of baboon.png: 5.72957338.
  y = rgb_to_y(read_rgb8(data_root / "Set14" / "baboon.png"))
  result = niqe(y, params)
  assert result.defined and result.blocks == 25
  assert result.score == pytest.approx(5.72957338, abs=1e-3)


def test_distortion_raises_the_score(data_root, params):
  y = np.round(rgb_to_y(read_rgb8(data_root / "Set5" / "baby.png")))[:288, :288]
  clean = niqe(y, params).score
  noisy = niqe(np.clip(y + np.random.default_rng(0).normal(0, 20, y.shape), 0, 255), params).score
  assert clean < noisy


def test_single_block_is_undefined_not_a_number(params):
  result = niqe(_texture(150, 150), params)
  assert not result.defined and result.score is None
  assert result.blocks == 1 and "1 block" in result.reason


def test_tiny_and_flat_images_are_undefined_not_a_crash(params):
  assert not niqe(np.full((200, 200), 77, np.uint8), params).defined  # all features NaN
  assert not niqe(_texture(20, 30), params).defined  # smaller than one block


def test_block_layout_follows_matlab(params):
  # A dimension with a single block keeps its full extent (MATLAB), others are cut to 96 px.
  assert block_features(_texture(150, 300), params.window).shape == (3, 36)
  assert block_features(_texture(200, 100), params.window).shape == (2, 36)
  result = niqe(_texture(200, 100), params)
  assert result.defined and math.isfinite(result.score) and result.blocks == 2


def test_aggd_recovers_gaussian_and_laplacian_shapes():
  rng = np.random.default_rng(0)
  alpha, beta_l, beta_r = _aggd(rng.normal(0, 2.0, 200_000))
  assert alpha == pytest.approx(2.0, abs=0.05)
  # For alpha = 2, beta = sigma * sqrt(Gamma(1/2) / Gamma(3/2)) = sigma * sqrt(2).
  assert beta_l == pytest.approx(2 * math.sqrt(2), rel=0.02)
  assert beta_r == pytest.approx(2 * math.sqrt(2), rel=0.02)
  assert _aggd(rng.laplace(0, 1.0, 200_000))[0] == pytest.approx(1.0, abs=0.05)


def test_no_params_given_is_none_not_a_guessed_path(monkeypatch):
  # The file is the user's: nothing beside the checkout is looked for.
  monkeypatch.delenv("FGRN_NIQE_PARAMS", raising=False)
  assert default_params_path() is None
  with pytest.raises(FileNotFoundError, match="pass --niqe_params or set FGRN_NIQE_PARAMS"):
    load_niqe_params()


def test_missing_params_file_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.npz"):
    load_niqe_params(tmp_path / "nope.npz")
  bad = tmp_path / "bad.npz"
  np.savez(bad, something=np.zeros(3))
  with pytest.raises(ValueError, match="bad.npz"):
    load_niqe_params(bad)
