"""Y-channel PSNR/SSIM: hand-computed cases, TF's own ops, and the Set5 reference values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fgrn_tf.data.images import read_rgb8
from fgrn_tf.data.imresize import imresize_np
from fgrn_tf.metrics.psnr_ssim import (
  crop_border,
  mod_crop,
  psnr,
  psnr_y,
  rgb_to_y,
  ssim,
  ssim_y,
)

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def _smooth_rgb(h, w, seed=0):
  """A natural-looking uint8 RGB image (smooth gradients plus mild texture), values 20..230."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  base = np.stack([np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in (0.0, 1.0, 2.0)], -1)
  img = 125 + 90 * base + rng.normal(0, 6, (h, w, 3))
  return np.clip(np.round(img), 20, 230).astype(np.uint8)


def test_identical_images_give_inf_psnr_and_ssim_one():
  img = _smooth_rgb(40, 48)
  assert psnr_y(img, img, crop_border=2) == math.inf
  assert ssim_y(img, img, crop_border=2) == pytest.approx(1.0, abs=1e-12)


def test_constant_offset_gives_known_psnr():
  img = _smooth_rgb(40, 48)
  shifted = img + np.uint8(5)  # no overflow: values are <= 230
  # Y moves by 5 * 219/255 everywhere, so MSE = (5 * 219/255)^2.
  expected = 20 * math.log10(255 / (5 * 219 / 255))
  assert psnr_y(img, shifted, crop_border=0) == pytest.approx(expected, abs=1e-9)
  assert psnr(np.zeros((8, 8)), np.full((8, 8), 3.0)) == pytest.approx(20 * math.log10(85))


def test_ssim_of_constant_planes_matches_formula():
  a, b = np.full((20, 20), 100.0), np.full((20, 20), 110.0)
  c1 = (0.01 * 255) ** 2
  # No variance: SSIM reduces to the luminance term.
  expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
  assert ssim(a, b) == pytest.approx(expected, abs=1e-12)


def test_one_pixel_shift_of_a_ramp_is_a_known_offset():
  ramp = np.tile(np.arange(64, dtype=np.float64) * 2, (32, 1))
  shifted = np.roll(ramp, 1, axis=1)  # column j now holds ramp[j-1] = ramp[j] - 2
  # The wrapped column 0 is what the border crop removes.
  assert psnr(crop_border(ramp, 1), crop_border(shifted, 1)) == pytest.approx(
      20 * math.log10(255 / 2), abs=1e-9)
  assert psnr(ramp, shifted) < 20 * math.log10(255 / 2)


def test_bt601_y_of_known_colours():
  rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]],
                 np.uint8)
  np.testing.assert_allclose(rgb_to_y(rgb)[0], [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966])
  assert rgb_to_y(np.full((1, 1, 3), 100, np.uint8), round_y=True)[0, 0] == round(
      16 + 219 * 100 / 255)


def test_mod_crop_and_border():
  img = np.zeros((37, 53, 3))
  assert mod_crop(img, 4).shape == (36, 52, 3)
  assert crop_border(img, 2).shape == (33, 49, 3)
  assert crop_border(img, 0).shape == img.shape


def test_matches_tf_image_ssim_and_psnr():
  a = rgb_to_y(_smooth_rgb(60, 70, seed=1))
  b = rgb_to_y(_smooth_rgb(60, 70, seed=2))
  ta, tb = tf.constant(a[None, :, :, None]), tf.constant(b[None, :, :, None])
  # tf.image.ssim computes in float32; ours in float64.
  assert ssim(a, b) == pytest.approx(float(tf.image.ssim(ta, tb, max_val=255.0)[0]), abs=1e-5)
  assert psnr(a, b) == pytest.approx(float(tf.image.psnr(ta, tb, max_val=255.0)[0]), abs=1e-4)


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="shape"):
    psnr_y(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8), 0)
  with pytest.raises(ValueError, match="at least 11"):
    ssim(np.zeros((10, 30)), np.zeros((10, 30)))


@pytest.mark.parametrize("scale", [2, 4])
def test_set5_bicubic_baseline_matches_reference_values(shared_dir, data_root, scale):
  with np.load(shared_dir / "reference" / "matlab_bicubic_cases.npz") as ref:
    ref = {k: float(ref[k]) for k in ref.files if k.startswith(f"set5_x{scale}_")}
  for name in SET5:
    hr = mod_crop(read_rgb8(data_root / "Set5" / f"{name}.png"), scale)
    lr = np.clip(np.round(imresize_np(hr, 1 / scale)), 0, 255).astype(np.uint8)
    sr = np.clip(np.round(imresize_np(lr, scale)), 0, 255).astype(np.uint8)
    key = f"set5_x{scale}_{name}"
    assert psnr_y(hr, sr, scale) == pytest.approx(ref[f"{key}_psnr_y"], abs=1e-3), name
    assert ssim_y(hr, sr, scale) == pytest.approx(ref[f"{key}_ssim_y"], abs=1e-5), name
    assert psnr_y(hr, sr, scale, round_y=True) == pytest.approx(
        ref[f"{key}_psnr_yround"], abs=1e-3), name
