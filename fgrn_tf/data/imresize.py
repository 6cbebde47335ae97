"""MATLAB `imresize(..., 'bicubic')` (antialiased), in numpy and as tensor ops.

The field's tables (and FGRN's guidance target y_bic) use MATLAB's bicubic. `imresize_np` is a
direct port, the reference. `bicubic_downscale` is the reference's fixed kernel as a strided
convolution in `keras.ops`, so the training step computes its target the same way on every
backend; `bicubic_upscale` (evaluation's baseline, TensorFlow only) gets the same numbers from
TF's own antialiased bicubic resize by padding symmetrically first (MATLAB mirrors the border,
TF renormalises the weights there) and cropping after. Tests hold both to the numpy port and to
MATLAB's own output.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops


def _cubic(x):
  ax = np.abs(x)
  ax2, ax3 = ax * ax, ax * ax * ax
  return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
          + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _contributions(in_len: int, out_len: int, scale: float):
  """MATLAB's `contributions`: per output pixel, weights and 0-based source indices."""
  width = 4.0
  if scale < 1:  # antialiasing: stretch the kernel to low-pass before subsampling
    kernel = lambda x: scale * _cubic(scale * x)  # noqa: E731
    width /= scale
  else:
    kernel = _cubic
  u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
  left = np.floor(u - width / 2)
  taps = int(math.ceil(width)) + 2
  idx = left[:, None] + np.arange(taps)[None, :]
  weights = kernel(u[:, None] - idx)
  weights /= weights.sum(axis=1, keepdims=True)
  mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
  idx = mirror[np.mod(idx - 1, 2 * in_len).astype(np.int64)]
  keep = np.any(weights != 0, axis=0)
  return weights[:, keep], idx[:, keep]


def imresize_np(image: np.ndarray, scale: float) -> np.ndarray:
  """MATLAB `imresize(image, scale, 'bicubic')`: numpy reference implementation.

  Args:
    image: `[H, W]` or `[H, W, C]`, any numeric dtype (uint8 is read as 0..255 values).
    scale: resize factor (< 1 downscales, with antialiasing).

  Returns:
    float64 `[ceil(H*scale), ceil(W*scale)(, C)]`, not rounded or clipped.
  """
  out = np.asarray(image, dtype=np.float64)
  if out.ndim not in (2, 3):
    raise ValueError(f"imresize_np expects [H, W] or [H, W, C], got shape {out.shape}")
  # MATLAB resizes the dimension with the smaller scale first; equal scales: rows first.
  for axis in (0, 1):
    n = out.shape[axis]
    weights, idx = _contributions(n, int(math.ceil(n * scale)), scale)
    moved = np.moveaxis(out, axis, 0)
    gathered = moved[idx]  # [out, taps, ...]
    w = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    out = np.moveaxis((gathered * w).sum(axis=1), 0, axis)
  return out


def _check_pad(images, pad: int, what: str):
  h, w = images.shape[1], images.shape[2]
  if (h is not None and h < pad) or (w is not None and w < pad):
    raise ValueError(f"{what}: image {h}x{w} is too small for MATLAB-style border handling "
                     f"(needs at least {pad} pixels per side)")


def downscale_kernel(scale: int) -> tuple[np.ndarray, int, int]:
  """MATLAB's antialiased bicubic for an integer downscale, as one 1-D filter with stride s.

  Every output pixel of an integer downscale sees the same weights at the same offset from
  `i * scale`, so the whole resize is a strided convolution; MATLAB's mirrored border is a
  symmetric pad. Read off an interior pixel of `_contributions`, the reference.

  Returns:
    (weights `[taps]`, left pad, right pad) for an input whose length is a multiple of `scale`.
  """
  n = 16 * scale
  weights, idx = _contributions(n, n // scale, 1.0 / scale)
  i = n // scale // 2
  offsets = idx[i].astype(np.int64) - i * scale  # taps MATLAB drops (zero weight) leave gaps
  kernel = np.zeros(offsets.max() - offsets.min() + 1, np.float32)
  kernel[offsets - offsets.min()] = weights[i]
  left = -int(offsets.min())
  return kernel, left, len(kernel) - left - scale


def bicubic_downscale(images, scale: int):
  """MATLAB-bicubic downscale by an integer factor, in `keras.ops` (any backend).

  A symmetric pad and a strided convolution per axis (`downscale_kernel`), not an image resize:
  XLA compiles this on every device, and the training step computes its guidance target with it.

  Args:
    images: float `[N, H, W, C]` (any value range), H and W multiples of `scale`.
    scale: integer factor.

  Returns:
    float32 `[N, H/scale, W/scale, C]`, not rounded or clipped.
  """
  images = ops.cast(images, "float32")
  weights, left, right = downscale_kernel(scale)
  _check_pad(images, max(left, right), "bicubic_downscale")
  padded = ops.pad(images, [[0, 0], [left, right], [left, right], [0, 0]], mode="symmetric")
  # Channels become batch entries of one-channel images: TF's CPU depthwise kernel (without
  # oneDNN) refuses unequal strides, a plain conv takes them.
  shape = ops.shape(padded)
  planes = ops.reshape(ops.transpose(padded, [0, 3, 1, 2]), [-1, shape[1], shape[2], 1])
  planes = ops.conv(planes, weights[:, None, None, None], strides=(scale, 1))
  planes = ops.conv(planes, weights[None, :, None, None], strides=(1, scale))
  out = ops.shape(planes)
  return ops.transpose(ops.reshape(planes, [shape[0], shape[3], out[1], out[2]]), [0, 2, 3, 1])


def bicubic_upscale(images, scale: int):
  """MATLAB-bicubic upscale by an integer factor, as TF ops: `[N, h, w, C]` -> `[N, hs, ws, C]`."""
  # Evaluation's baseline, never part of a model: the one use of TensorFlow here, so the
  # training step's target (above) imports none.
  import tensorflow as tf

  images = tf.convert_to_tensor(images, tf.float32)
  _check_pad(images, 2, "bicubic_upscale")
  padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]], "SYMMETRIC")
  size = tf.shape(padded)[1:3] * scale
  out = tf.image.resize(padded, size, method="bicubic", antialias=True)
  crop = 2 * scale
  return out[:, crop:-crop, crop:-crop, :]


def bicubic_uint8(image: np.ndarray, scale: int, up: bool = False) -> np.ndarray:
  """One uint8 `[H, W, C]` image MATLAB-bicubic resized by `scale` (down, or `up`), rounded and
  clipped to uint8: the bicubic baseline's LR and SR as the evaluation and the model cards show."""
  resize = bicubic_upscale if up else bicubic_downscale
  out = np.asarray(resize(np.asarray(image, np.float32)[None], scale))[0]
  return np.clip(np.round(out), 0, 255).astype(np.uint8)
