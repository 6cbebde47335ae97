"""MSCN coefficients (mean-subtracted, contrast-normalised) as in MATLAB's `niqe`, `piqe`."""

from __future__ import annotations

import numpy as np


def filter_replicate(x: np.ndarray, window: np.ndarray) -> np.ndarray:
  """MATLAB `imfilter(x, window, 'replicate')`: correlation, output the size of `x`."""
  kh, kw = window.shape
  ph, pw = kh // 2, kw // 2
  padded = np.pad(x, ((ph, kh - 1 - ph), (pw, kw - 1 - pw)), mode="edge")
  h, w = x.shape
  out = np.zeros_like(x)
  for i in range(kh):
    for j in range(kw):
      out += window[i, j] * padded[i:i + h, j:j + w]
  return out


def mscn(image: np.ndarray, window: np.ndarray) -> np.ndarray:
  """`(I - mu) / (sigma + 1)` with the local mean and deviation under `window`.

  Args:
    image: float64 `[H, W]` on the 0..255 scale.
    window: normalised weights, e.g. the 7x7 Gaussian of NIQE/PIQE.
  """
  mu = filter_replicate(image, window)
  sigma = np.sqrt(np.abs(filter_replicate(image * image, window) - mu * mu))
  return (image - mu) / (sigma + 1)
