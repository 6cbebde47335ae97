"""The flow guidance module F of FGRN (Li et al., BMVC 2021): invertible affine couplings.

Every piece returns its log-determinant, per example and summed over the non-batch axes, from
both `forward` and `inverse`; nothing is stored on `self` between calls, so the layers are
safe under `tf.function` and `tf.distribute`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from fgrn_tf.models.blocks import DenseBlock


@keras.saving.register_keras_serializable(package="fgrn_tf")
class FlowCell(layers.Layer):
  """One coupling: `l1' = l1 + a(l2)`, `l2' = l2 * exp(s(l1')) + p(l1')`.

  The LR image has only 3 channels, so a fixed split would leave one side out of the affine
  part forever. Cell `index` takes channel `index mod C` as l1 and the others as l2, and puts
  them back in place: over 3 cells every channel is shifted once and scaled twice, and the
  output keeps the RGB order (F(x) must look like the bicubic LR, channel for channel). Slices
  and a concat do this without a permutation op, so TFLite gets plain builtins.

  The log-scale is bounded, `s = clamp * tanh(b / 2)` (IRN's `clamp * (2 sigmoid(b) - 1)`).
  The last conv of a, b and p is zero, so a new cell is the identity.
  """

  def __init__(self, channels: int = 3, index: int = 0, growth: int = 32, clamp: float = 1.0,
               **kwargs):
    super().__init__(**kwargs)
    if channels < 2:
      raise ValueError(f"a coupling needs at least 2 channels, got {channels}")
    self.channels = channels
    self.index = index
    self.growth = growth
    self.clamp = clamp
    self.pivot = index % channels
    dtype = self.dtype_policy  # float32 in FGRN, whatever the global policy (precision.py)
    self.a = DenseBlock(1, growth, name="a", dtype=dtype)
    self.b = DenseBlock(channels - 1, growth, name="b", dtype=dtype)
    self.p = DenseBlock(channels - 1, growth, name="p", dtype=dtype)

  def build(self, input_shape):
    if input_shape[-1] != self.channels:
      raise ValueError(f"FlowCell expects {self.channels} channels, received input shape "
                       f"{tuple(input_shape)}")
    lead = tuple(input_shape[:-1])
    self.a.build(lead + (self.channels - 1,))
    self.b.build(lead + (1,))
    self.p.build(lead + (1,))

  # Zero-channel slices (pivot at either end) are left out: TFLite's XNNPACK delegate cannot
  # resize a graph that holds an empty tensor, so the exported .tflite would not run.
  def _split(self, x):
    k, c = self.pivot, self.channels
    rest = [part for part, size in ((x[..., :k], k), (x[..., k + 1:], c - k - 1)) if size]
    return x[..., k:k + 1], rest[0] if len(rest) == 1 else ops.concatenate(rest, axis=-1)

  def _merge(self, l1, l2):
    k, c = self.pivot, self.channels
    parts = [part for part, size in ((l2[..., :k], k), (l1, 1), (l2[..., k:], c - k - 1)) if size]
    return ops.concatenate(parts, axis=-1)

  def _log_scale(self, l1):
    return self.clamp * ops.tanh(0.5 * self.b(l1))

  def forward(self, x):
    """Args: x float `[N, H, W, C]`. Returns (y `[N, H, W, C]`, logdet `[N]`)."""
    l1, l2 = self._split(x)
    l1 = l1 + self.a(l2)
    s = self._log_scale(l1)
    l2 = l2 * ops.exp(s) + self.p(l1)
    return self._merge(l1, l2), ops.sum(s, axis=(1, 2, 3))

  def inverse(self, y):
    """Args: y float `[N, H, W, C]`. Returns (x, logdet `[N]` of the inverse map)."""
    l1, l2 = self._split(y)
    s = self._log_scale(l1)
    l2 = (l2 - self.p(l1)) * ops.exp(-s)
    l1 = l1 - self.a(l2)
    return self._merge(l1, l2), -ops.sum(s, axis=(1, 2, 3))

  def call(self, x):
    return self.forward(x)

  def get_config(self):
    return {**super().get_config(), "channels": self.channels, "index": self.index,
            "growth": self.growth, "clamp": self.clamp}


@keras.saving.register_keras_serializable(package="fgrn_tf")
class FlowGuidance(layers.Layer):
  """F: K coupling cells in sequence. `forward(x)` is the visible LR image, `inverse` undoes it."""

  def __init__(self, cells: int = 3, channels: int = 3, growth: int = 32, clamp: float = 1.0,
               **kwargs):
    super().__init__(**kwargs)
    self.num_cells = cells
    self.channels = channels
    self.growth = growth
    self.clamp = clamp
    self.cells = [FlowCell(channels, i, growth, clamp, name=f"cell{i}", dtype=self.dtype_policy)
                  for i in range(cells)]

  def build(self, input_shape):
    for cell in self.cells:
      cell.build(input_shape)

  def forward(self, x):
    """Args: x float `[N, H, W, C]`. Returns (F(x), logdet `[N]`)."""
    logdet = ops.zeros(ops.shape(x)[:1], dtype=x.dtype)
    for cell in self.cells:
      x, ld = cell.forward(x)
      logdet = logdet + ld
    return x, logdet

  def inverse(self, y):
    """Args: y float `[N, H, W, C]`. Returns (F^-1(y), logdet `[N]` of the inverse map)."""
    logdet = ops.zeros(ops.shape(y)[:1], dtype=y.dtype)
    for cell in reversed(self.cells):
      y, ld = cell.inverse(y)
      logdet = logdet + ld
    return y, logdet

  def call(self, x):
    return self.forward(x)

  def get_config(self):
    return {**super().get_config(), "cells": self.num_cells, "channels": self.channels,
            "growth": self.growth, "clamp": self.clamp}
