"""FGRN's loss terms (Li et al., BMVC 2021, eqs. 8-9), per example, on every Keras backend.

Each term is returned per example (`[N]`); the training step of each backend reduces them to
the scalar it differentiates (`fgrn_tf.models.steps`).
"""

from __future__ import annotations

from keras import ops


def _mean_abs(a, b):
  return ops.mean(ops.abs(a - b), axis=tuple(range(1, len(a.shape))))


def reconstruction(hr, sr):
  """L_rec = mean |y - Gu(x)| per example. hr, sr: `[N, H, W, 3]` in [0, 1]. Returns `[N]`."""
  return _mean_abs(hr, sr)


def guidance_l1(lr, y_bic):
  """mean |F(x) - bicubic(y)| per example (the L1 part of L_guide). Returns `[N]`."""
  return _mean_abs(lr, y_bic)


def guidance(lr, y_bic, logdet, gamma):
  """L_guide = (sum |F(x) - y_bic| - gamma * log|det dF/dx|) / (number of LR values).

  Args:
    lr: F(x), `[N, h, w, 3]`.
    y_bic: bicubic LR of the HR image, same shape.
    logdet: `[N]`, log|det| of F at x, summed over the LR values.
    gamma: weight of the log-determinant (1e-3 in the paper).

  Returns:
    `[N]`.
  """
  shape = ops.shape(lr)
  size = ops.cast(shape[1] * shape[2] * shape[3], lr.dtype)
  return guidance_l1(lr, y_bic) - gamma * logdet / size
