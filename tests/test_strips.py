"""fgrn_tf/metrics/strips.py: PSNR/SSIM over strips of rows equal the whole-image metrics."""

import math

import numpy as np
import pytest
from helpers import photo

from fgrn_tf.metrics import psnr_ssim
from fgrn_tf.metrics.strips import image_quality


def test_image_quality_equals_the_evaluation_metrics_in_strips():
  hr = photo(203, 157, seed=6)
  sr = np.clip(hr.astype(int) + np.random.default_rng(0).integers(-9, 10, hr.shape), 0, 255)
  sr = sr.astype(np.uint8)
  expected = psnr_ssim.psnr_y(hr, sr, 2), psnr_ssim.ssim_y(hr, sr, 2)
  for strip in (1 << 20, 3000, 11 * 153):
    p, s = image_quality(hr, sr, 2, strip_pixels=strip)
    assert p == pytest.approx(expected[0], abs=1e-9)
    assert s == pytest.approx(expected[1], abs=1e-12)
  assert image_quality(hr, hr, 2) == (math.inf, 1.0)
  p, s = image_quality(hr[:14, :15], sr[:14, :15], 2)
  assert math.isfinite(p) and math.isnan(s)
