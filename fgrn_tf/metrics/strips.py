"""Y-channel PSNR and SSIM of big images, computed over strips of rows with the evaluation's
conventions (`fgrn_tf.metrics.psnr_ssim`), so a 64-megapixel round trip needs no float64 copy
of the whole image."""

from __future__ import annotations

import math

import numpy as np

from fgrn_tf.metrics import psnr_ssim as m


def image_quality(hr: np.ndarray, sr: np.ndarray, scale: int,
                  strip_pixels: int = 1 << 20) -> tuple[float, float]:
  """Y-channel PSNR (dB) and SSIM of a round trip, with the evaluation's conventions.

  Equal to `psnr_ssim.psnr_y` / `ssim_y` with `crop_border=scale` (that module does the
  arithmetic), but computed over strips of rows, so that a 64-megapixel image needs a few
  float64 strips rather than a dozen float64 copies of itself: SSIM is a mean over its valid
  region, which strips overlapping by the window size less one split exactly; PSNR comes from
  the strips' mean squared errors.

  Args:
    hr, sr: uint8 RGB `[H, W, 3]` of equal size (not mod-cropped: the round trip keeps H x W).
    scale: the model's scale (the border the evaluation crops).
    strip_pixels: about how many pixels one strip holds.

  Returns:
    (psnr, ssim); psnr is inf for identical images, ssim NaN for images too small for the
    11x11 window after the border crop.
  """
  if hr.shape != sr.shape:
    raise ValueError(f"images differ in shape: {hr.shape} vs {sr.shape}")
  height, width = hr.shape[0] - 2 * scale, hr.shape[1] - 2 * scale
  if height < 1 or width < 1:
    return math.nan, math.nan

  def y(image, a, b):  # Y of rows [a, b) of the border-cropped image
    return m.rgb_to_y(image[scale + a:scale + b, scale:scale + width])

  rows = max(m.SSIM_WINDOW, strip_pixels // width)
  sq_err = 0.0
  for a in range(0, height, rows):
    b = min(a + rows, height)
    sq_err += (b - a) * width * 255.0**2 / 10.0 ** (m.psnr(y(hr, a, b), y(sr, a, b)) / 10.0)
  psnr = math.inf if sq_err == 0 else 10.0 * math.log10(255.0**2 * height * width / sq_err)
  # The SSIM map of rows [a, b + window - 1) is rows [a, b) of the whole map.
  valid, reach = height - m.SSIM_WINDOW + 1, m.SSIM_WINDOW - 1
  if valid < 1 or width < m.SSIM_WINDOW:
    return psnr, math.nan
  total = 0.0
  for a in range(0, valid, rows):
    b = min(a + rows, valid)
    total += m.ssim(y(hr, a, b + reach), y(sr, a, b + reach)) * (b - a)
  return psnr, total / valid
