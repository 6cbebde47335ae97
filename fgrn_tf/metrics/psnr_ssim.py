"""PSNR and SSIM the way super-resolution and rescaling papers report them.

The conventions are in the signatures: HR mod-cropped to the scale, Y of YCbCr (ITU-R BT.601,
16..235) computed in float64 from uint8 RGB, `crop_border` pixels dropped on every side, SSIM as
Wang et al. 2004 / MATLAB `ssim_index` (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, mean
over the "valid" region). Arithmetic is float64 numpy; `tests/test_psnr_ssim.py` holds it to
`tf.image.ssim`/`tf.image.psnr` and to MATLAB's Set5 values (reference data the tests read from
the folder `$FGRN_SHARED` names).
"""

from __future__ import annotations

import math

import numpy as np

# ITU-R BT.601 for 8-bit R'G'B' in 0..255 -> Y' in 16..235 (MATLAB `rgb2ycbcr`).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
  """Crops `[H, W, ...]` at the bottom/right to multiples of `scale` (the field's "mod-crop")."""
  h, w = image.shape[:2]
  return image[:h - h % scale, :w - w % scale]


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
  """Drops `border` pixels from each side of `[H, W, ...]`."""
  if border <= 0:
    return image
  return image[border:-border, border:-border]


def rgb_to_y(rgb: np.ndarray, round_y: bool = False) -> np.ndarray:
  """Y of YCbCr (BT.601, 16..235) of an RGB image.

  Args:
    rgb: uint8 `[H, W, 3]` (values 0..255; other dtypes are read as 0..255 values).
    round_y: round to integers, as MATLAB's `rgb2ycbcr` does on uint8 input. The published
      tables we reproduce use the unrounded value (the default); rounding moves PSNR by up to
      ~0.05 dB per image.

  Returns:
    float64 `[H, W]` in 16..235.
  """
  rgb = np.asarray(rgb)
  if rgb.ndim != 3 or rgb.shape[2] != 3:
    raise ValueError(f"rgb_to_y expects [H, W, 3] RGB, got shape {rgb.shape}")
  y = 16.0 + rgb.astype(np.float64) @ _Y_WEIGHTS
  return np.round(y) if round_y else y


def psnr(a: np.ndarray, b: np.ndarray, max_val: float = 255.0) -> float:
  """PSNR in dB of two same-shape arrays (float64 arithmetic); inf when they are equal."""
  a, b = _same_shape(a, b)
  mse = float(np.mean((a - b) ** 2))
  if mse == 0.0:
    return math.inf
  return 10.0 * math.log10(max_val * max_val / mse)


def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-(x * x) / (2.0 * sigma * sigma))
  return g / g.sum()  # fspecial('gaussian') is the outer product of this with itself


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
  """2-D correlation of `[H, W]` with the separable kernel outer(g, g), "valid" region only."""
  k = len(g)
  h, w = x.shape
  rows = sum(g[i] * x[i:h - k + 1 + i, :] for i in range(k))
  return sum(g[j] * rows[:, j:w - k + 1 + j] for j in range(k))


def ssim(a: np.ndarray, b: np.ndarray, max_val: float = 255.0) -> float:
  """SSIM of two gray planes, MATLAB `ssim_index` style (Wang et al. 2004).

  Args:
    a, b: `[H, W]` planes on a 0..max_val scale, H and W at least 11.
    max_val: dynamic range L (C1 = (K1 L)^2, C2 = (K2 L)^2).

  Returns:
    mean SSIM over the valid (unpadded) region; 1.0 for identical planes.
  """
  a, b = _same_shape(a, b)
  if a.ndim != 2:
    raise ValueError(f"ssim expects 2-D planes, got shape {a.shape}")
  if min(a.shape) < SSIM_WINDOW:
    raise ValueError(f"ssim needs planes of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape}")
  g = _gaussian_1d(SSIM_WINDOW, SSIM_SIGMA)
  c1 = (SSIM_K1 * max_val) ** 2
  c2 = (SSIM_K2 * max_val) ** 2
  mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
  var_a = _filter_valid(a * a, g) - mu_a * mu_a
  var_b = _filter_valid(b * b, g) - mu_b * mu_b
  cov = _filter_valid(a * b, g) - mu_a * mu_b
  num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
  den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
  return float(np.mean(num / den))


def psnr_y(img: np.ndarray, img2: np.ndarray, crop_border: int, round_y: bool = False) -> float:
  """PSNR on Y (BT.601) of two uint8 RGB images `[H, W, 3]`, `crop_border` pixels dropped."""
  return psnr(*_y_pair(img, img2, crop_border, round_y))


def ssim_y(img: np.ndarray, img2: np.ndarray, crop_border: int, round_y: bool = False) -> float:
  """SSIM on Y (BT.601) of two uint8 RGB images `[H, W, 3]`, `crop_border` pixels dropped."""
  return ssim(*_y_pair(img, img2, crop_border, round_y))


def _y_pair(img, img2, border, round_y):
  if np.shape(img) != np.shape(img2):
    raise ValueError(f"images differ in shape: {np.shape(img)} vs {np.shape(img2)}")
  return (crop_border(rgb_to_y(img, round_y), border),
          crop_border(rgb_to_y(img2, round_y), border))


def _same_shape(a, b):
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  if a.shape != b.shape:
    raise ValueError(f"arrays differ in shape: {a.shape} vs {b.shape}")
  if a.size == 0:
    raise ValueError("empty arrays")
  return a, b
