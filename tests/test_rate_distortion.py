"""The rate-distortion benchmark's arithmetic: BD-rate, PSNR at matched bpp, aggregation."""

import math

import numpy as np
import pytest

from bench import rate_distortion as rd


def curve(rates, psnrs):
  return [(r, p, f"q{i}") for i, (r, p) in enumerate(zip(rates, psnrs, strict=True))]


def test_bd_rate_is_zero_for_the_same_curve_and_minus_half_for_half_the_bits():
  rates = [0.5, 1.0, 2.0, 4.0, 8.0]
  psnrs = [28.0, 31.0, 34.0, 37.0, 40.0]
  anchor = curve(rates, psnrs)
  assert rd.bd_rate(anchor, anchor) == pytest.approx(0.0, abs=1e-9)
  assert rd.bd_rate(anchor, curve([r / 2 for r in rates], psnrs)) == pytest.approx(-50.0)
  assert rd.bd_rate(anchor, curve([r * 2 for r in rates], psnrs)) == pytest.approx(100.0)


def test_bd_rate_needs_overlap_and_four_points():
  anchor = curve([1, 2, 3, 4], [30, 31, 32, 33])
  assert rd.bd_rate(anchor, curve([1, 2, 3, 4], [40, 41, 42, 43])) is None
  assert rd.bd_rate(anchor, curve([1, 2, 3], [30, 31, 32])) is None


def test_psnr_at_interpolates_inside_the_curve_only():
  points = curve([1.0, 2.0], [30.0, 34.0])
  assert rd.psnr_at(points, 1.5) == pytest.approx(32.0)
  assert rd.psnr_at(points, 0.5) is None and rd.psnr_at(points, 3.0) is None


def test_aggregate_sums_bits_over_pixels_and_averages_psnr():
  a = {"c": {"jpeg:90": (30.0, 100)}}
  b = {"c": {"jpeg:90": (40.0, 300)}}
  (bpp, psnr, spec), = rd.aggregate([(a, 100), (b, 300)])["c"]
  assert spec == "jpeg:90" and psnr == 35.0 and bpp == pytest.approx(8 * 400 / 400)


def test_y_psnr_crops_the_border():
  hr = np.zeros((16, 16, 3), np.uint8)
  out = hr.copy()
  out[0, :, :] = 255  # only the border row differs
  assert math.isinf(rd.y_psnr(hr, out, 2))
  assert rd.y_psnr(hr, out, 0) < 30
