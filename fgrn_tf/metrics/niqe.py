"""NIQE (Mittal, Soundararajan & Bovik, IEEE SPL 2013) as MATLAB's `niqe` computes it.

A port of the Image Processing Toolbox `niqe` / `niqeModel.calculateNIQEscore` with the
default model (block size 96x96, sharpness threshold 0): round to 0..255 integers; crop to
whole blocks (a dimension with fewer than two blocks becomes one block of its full extent, as
MATLAB does); at two scales (the second a MATLAB-bicubic 1/2 downscale), MSCN coefficients with
the 7x7 Gaussian (sigma 7/6, replicate border) and 18 AGGD features per block; fit a Gaussian
to the 36-dimensional block features and return its distance to the pristine model.

Where MATLAB returns a number that means nothing we return "undefined" instead: with a single
block (images under 192 px on both sides) MATLAB's `nancov` of one 1x36 row is the variance of
those 36 numbers, a scalar it then adds to every entry of the pristine covariance. The pristine
parameters are data (niqe_pris_params.npz, as basicsr ships it), read from a path given by the
caller or `$FGRN_NIQE_PARAMS`, never copied.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib

import numpy as np

from fgrn_tf.data.imresize import imresize_np
from fgrn_tf.metrics.mscn import mscn as mscn_of

PARAMS_ENV = "FGRN_NIQE_PARAMS"
BLOCK_SIZE = 96
_N_FEATURES = 18  # per scale; two scales -> 36
_PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _alpha_grid():
  # MATLAB's 0.2:0.001:10, built the way its colon operator builds it (from both ends).
  n = 9800
  k = np.arange(n + 1)
  alpha = np.where(k <= n // 2, 0.2 + k * 0.001, 10.0 - (n - k) * 0.001)
  ratio = np.array([math.gamma(2 / a) ** 2 / (math.gamma(1 / a) * math.gamma(3 / a))
                    for a in alpha])
  return alpha, ratio


_ALPHA, _ALPHA_RATIO = _alpha_grid()


@dataclasses.dataclass(frozen=True)
class NiqeParams:
  """The pristine multivariate Gaussian and the MSCN window.

  Attributes:
    mu: float64 `[36]` mean of pristine block features.
    cov: float64 `[36, 36]` their covariance.
    window: float64 `[7, 7]` Gaussian (sigma 7/6) for the local mean and deviation.
  """

  mu: np.ndarray
  cov: np.ndarray
  window: np.ndarray


@dataclasses.dataclass(frozen=True)
class NiqeResult:
  """A NIQE score, or why there is none.

  Attributes:
    score: the NIQE value (lower is more natural), or None when undefined.
    blocks: how many blocks the image gave.
    reason: why the score is undefined (None when it is defined).
  """

  score: float | None
  blocks: int
  reason: str | None = None

  @property
  def defined(self) -> bool:
    return self.score is not None


def default_params_path() -> pathlib.Path | None:
  """`$FGRN_NIQE_PARAMS`, else None: the file is not ours to ship, so there is no guessed
  location, and a caller for which NIQE is optional can leave it out."""
  env = os.environ.get(PARAMS_ENV)
  return pathlib.Path(env) if env else None


def load_niqe_params(path: str | os.PathLike | None = None) -> NiqeParams:
  """Reads the pristine model (`mu_pris_param`, `cov_pris_param`, `gaussian_window`).

  Args:
    path: the .npz file (None: `default_params_path()`).

  Raises:
    FileNotFoundError / ValueError with one line naming the file, or saying that none is set.
  """
  path = pathlib.Path(path) if path else default_params_path()
  if path is None:
    raise FileNotFoundError(f"no NIQE pristine parameters given (pass --niqe_params or set "
                            f"{PARAMS_ENV}; basicsr ships niqe_pris_params.npz)")
  if not path.is_file():
    raise FileNotFoundError(f"NIQE pristine parameters not found: {path} (pass --niqe_params "
                            f"or set {PARAMS_ENV}; basicsr ships niqe_pris_params.npz)")
  try:
    with np.load(path) as data:
      mu = np.asarray(data["mu_pris_param"], np.float64).reshape(-1)
      cov = np.asarray(data["cov_pris_param"], np.float64)
      window = np.asarray(data["gaussian_window"], np.float64)
  except (KeyError, OSError, ValueError) as e:
    raise ValueError(f"{path}: not a NIQE parameter file ({e})") from None
  if mu.shape != (2 * _N_FEATURES,) or cov.shape != (36, 36) or window.ndim != 2:
    raise ValueError(f"{path}: unexpected shapes mu {mu.shape}, cov {cov.shape}, "
                     f"window {window.shape}")
  return NiqeParams(mu=mu, cov=cov, window=window)


def _aggd(x: np.ndarray):
  """MATLAB `estimateAGGDParameters`: (alpha, beta_left, beta_right) of a 1-D sample."""
  with np.errstate(divide="ignore", invalid="ignore"):
    neg = x < 0
    sq = x * x
    left = np.float64(sq[neg].sum())
    right = np.float64(abs(sq.sum() - left))
    n_left = int(neg.sum())
    n_right = x.size - n_left
    std_left = np.sqrt(left / n_left) if n_left > 0 else np.float64(np.nan)
    std_right = np.sqrt(right / n_right) if n_right > 0 else np.float64(np.nan)
    gammahat = std_left / std_right
    rhat = np.float64(np.abs(x).sum()) ** 2 / (x.size * (left + right))
    rhat_norm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / ((gammahat ** 2 + 1) ** 2)
    # MATLAB's min() returns the first index when every difference is NaN; so does argmin.
    alpha = _ALPHA[int(np.argmin((_ALPHA_RATIO - rhat_norm) ** 2))]
  t = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
  return alpha, std_left * t, std_right * t


def _block_features(block: np.ndarray) -> np.ndarray:
  """MATLAB `computeNSSFeatures`: 18 features of one block of MSCN coefficients."""
  feats = np.empty(_N_FEATURES)
  alpha, beta_l, beta_r = _aggd(block.ravel())
  feats[0], feats[1] = alpha, (beta_l + beta_r) / 2
  for k, shift in enumerate(_PAIR_SHIFTS):
    pair = block * np.roll(block, shift, axis=(0, 1))  # circshift
    alpha, beta_l, beta_r = _aggd(pair.ravel())
    with np.errstate(invalid="ignore"):
      mean = (beta_r - beta_l) * (math.gamma(2 / alpha) / math.gamma(1 / alpha))
    feats[2 + 4 * k: 6 + 4 * k] = (alpha, mean, beta_l, beta_r)
  return feats


def _round_half_away(x: float) -> int:
  return int(math.floor(x + 0.5))


def block_features(image: np.ndarray, window: np.ndarray,
                   block_size: int = BLOCK_SIZE) -> np.ndarray:
  """The 36 NIQE features of every block (MATLAB `computeBlockNSSFeatures`).

  Args:
    image: float64 `[H, W]`, 0..255 integers.
    window: the 7x7 MSCN window.
    block_size: block side at the first scale.

  Returns:
    float64 `[blocks, 36]` (may hold NaN for flat blocks), blocks in column-major order.
  """
  rows, cols = image.shape
  n_r, n_c = max(rows // block_size, 1), max(cols // block_size, 1)
  b_r = rows if n_r == 1 else block_size
  b_c = cols if n_c == 1 else block_size
  im = image[:n_r * b_r, :n_c * b_c]
  feats = np.empty((n_r * n_c, 2 * _N_FEATURES))
  for scale in (1, 2):
    mscn = mscn_of(im, window)
    s_r, s_c = _round_half_away(b_r / scale), _round_half_away(b_c / scale)
    col = (scale - 1) * _N_FEATURES
    for j in range(n_c):  # blockproc output reshaped column-major: rows vary fastest
      for i in range(n_r):
        block = mscn[i * s_r:(i + 1) * s_r, j * s_c:(j + 1) * s_c]
        feats[j * n_r + i, col:col + _N_FEATURES] = _block_features(block)
    if scale == 1:
      im = imresize_np(im, 0.5)
  return feats


def niqe(image: np.ndarray, params: NiqeParams, block_size: int = BLOCK_SIZE) -> NiqeResult:
  """NIQE of a gray (or Y) image, as MATLAB's `niqe` with the default model.

  Args:
    image: `[H, W]`, uint8 or float on the 0..255 scale (rounded to integers, as MATLAB
      does with `round(255 * im2double(uint8))`).
    params: the pristine model, from `load_niqe_params`.
    block_size: block side (MATLAB's default model: 96).

  Returns:
    NiqeResult: `score` None with a `reason` when the block statistics are undefined (fewer
    than two blocks with finite features, or a non-finite distance); never raises for that.
  """
  im = np.asarray(image)
  if im.ndim != 2:
    raise ValueError(f"niqe expects a 2-D gray/Y image, got shape {im.shape}")
  if im.size == 0 or not np.all(np.isfinite(im)):
    raise ValueError("niqe: empty image or non-finite values")
  im = np.round(im.astype(np.float64))
  feats = block_features(im, params.window, block_size)
  n = feats.shape[0]
  nan = np.isnan(feats)
  complete = feats[~nan.any(axis=1)]
  if complete.shape[0] < 2:
    what = "1 block" if n == 1 else f"{complete.shape[0]} of {n} blocks with finite features"
    return NiqeResult(None, n, f"undefined: {what} for a {im.shape[0]}x{im.shape[1]} image "
                               f"(a covariance needs 2 or more; {block_size}-px blocks)")
  mu = np.nanmean(feats, axis=0)
  cov = np.cov(complete, rowvar=False)  # MATLAB nancov: rows with any NaN dropped, N-1
  mat = (params.cov + cov) / 2
  inv = np.linalg.pinv(mat, rcond=max(mat.shape) * np.finfo(np.float64).eps)
  d = params.mu - mu
  q = float(d @ inv @ d)
  if not math.isfinite(q) or q < 0:
    return NiqeResult(None, n, f"undefined: distance^2 {q} is not a finite non-negative number")
  return NiqeResult(math.sqrt(q), n)
