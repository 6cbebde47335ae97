"""PIQE (Venkatanath et al., NCC 2015) as MATLAB's `piqe` computes it, vectorised over blocks.

MATLAB `piqe` (R2018b): pad to multiples of 16 by replicating the last row/column; gray =
`round(255 * im2double(I))`; MSCN with a 7x7 Gaussian (sigma 7/6, replicate border); 16x16
blocks whose MSCN variance exceeds 0.1 are "active"; an active block scores 1 - var when one of
its edge segments (6 pixels) has a standard deviation under 0.1 (blockiness) and var when its
centre/surround deviation test flags noise. Score = 100 (sum + 1) / (active + 1), in [0, 100],
lower is better. MATLAB's own quirks are kept (the "surround" drops columns 8 and 10).
`tests/test_piqe.py` checks it against the independent `pypiqe` port.
"""

from __future__ import annotations

import numpy as np

from fgrn_tf.metrics.mscn import mscn as mscn_of

BLOCK = 16
SEGMENT = 6
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
# MATLAB rgb2gray weights.
_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def _gaussian_7x7() -> np.ndarray:
  x = np.arange(7, dtype=np.float64) - 3
  g = np.exp(-(x * x) / (2 * (7 / 6) ** 2))
  g /= g.sum()
  return np.outer(g, g)


def _to_gray255(image: np.ndarray) -> np.ndarray:
  """`round(255 * im2double(I))` (after rgb2gray for RGB), float64."""
  im = np.asarray(image)
  if im.ndim == 3 and im.shape[2] == 3:
    if im.dtype == np.uint8:
      im = np.round(im.astype(np.float64) @ _GRAY)  # rgb2gray on uint8 stays uint8
    else:
      im = im.astype(np.float64) @ _GRAY
  elif im.ndim != 2:
    raise ValueError(f"piqe expects [H, W] or [H, W, 3], got shape {im.shape}")
  if im.size == 0 or not np.all(np.isfinite(im)):
    raise ValueError("piqe: empty image or non-finite values")
  if np.asarray(image).dtype == np.uint8:
    return im.astype(np.float64)
  if np.asarray(image).dtype == np.uint16:
    return np.round(255 * im.astype(np.float64) / 65535)
  return np.round(255 * im.astype(np.float64))  # float: MATLAB reads it as 0..1


def piqe(image: np.ndarray) -> float:
  """PIQE score of an image.

  Args:
    image: `[H, W]` or `[H, W, 3]`; uint8 (0..255), uint16, or float in [0, 1] (MATLAB's
      `im2double` convention; float 0..255 data must be divided by 255 first).

  Returns:
    PIQE in [0, 100] (100 for a flat image).
  """
  im = _to_gray255(image)
  rows, cols = im.shape
  im = np.pad(im, ((0, -rows % BLOCK), (0, -cols % BLOCK)), mode="edge")
  window = _gaussian_7x7()
  mscn = mscn_of(im, window)

  h, w = mscn.shape
  blocks = mscn.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2)
  blocks = blocks.reshape(-1, BLOCK, BLOCK)
  var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
  active = var > ACTIVITY_THRESHOLD
  blocks, var = blocks[active], var[active]
  if len(blocks) == 0:
    return 100.0

  # Noticeable-artifact criterion: any 6-pixel segment of any edge with std < threshold.
  edges = np.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], 1)
  segments = np.lib.stride_tricks.sliding_window_view(edges, SEGMENT, axis=2)
  impaired = (segments.std(axis=3, ddof=1) < IMPAIRED_THRESHOLD).any(axis=(1, 2))

  # Noise criterion: centre columns 8 and 9 (1-based) against the rest; MATLAB deletes
  # column 8 and then column "9" of the shortened block, i.e. original column 10.
  center = np.concatenate([blocks[:, :, 7], blocks[:, :, 8]], axis=1)
  surround = np.delete(blocks, [7, 9], axis=2).reshape(len(blocks), -1)
  with np.errstate(divide="ignore", invalid="ignore"):
    ratio = center.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
  ratio = np.where(np.isnan(ratio), 0.0, ratio)
  block_sigma = np.sqrt(var)
  beta = np.abs(block_sigma - ratio) / np.maximum(block_sigma, ratio)
  noisy = block_sigma > 2 * beta

  dist = np.sum(impaired * (1 - var) + noisy * var)
  return float((dist + 1) / (len(blocks) + 1) * 100)
