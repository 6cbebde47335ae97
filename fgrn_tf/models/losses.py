"""FGRN's loss terms (Li et al., BMVC 2021, eqs. 8-9), per example and replica-aware.

Each term is returned per example (`[N]`); `replica_mean` turns a per-example vector into the
scalar to differentiate on one replica, divided by the *global* batch, because under
`tf.distribute` the optimizer sums the replicas' gradients.
"""

from __future__ import annotations

import tensorflow as tf


def _mean_abs(a, b):
  return tf.reduce_mean(tf.abs(a - b), axis=tf.range(1, tf.rank(a)))


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
  size = tf.cast(tf.reduce_prod(tf.shape(lr)[1:]), lr.dtype)
  return guidance_l1(lr, y_bic) - gamma * logdet / size


def replica_mean(per_example):
  """Sum over this replica's examples divided by the global batch (all replicas)."""
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  global_batch = tf.cast(tf.shape(per_example)[0] * replicas, per_example.dtype)
  return tf.reduce_sum(per_example) / global_batch
