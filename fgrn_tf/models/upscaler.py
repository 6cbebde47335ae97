"""Gu, the upscaler of FGRN (Li et al., BMVC 2021): conv, ResBlocks, conv, pixel shuffle."""

from __future__ import annotations

import keras
from keras import layers, ops

from fgrn_tf.models.blocks import ResTrunk
from fgrn_tf.models.pixel_shuffle import depth_to_space


@keras.saving.register_keras_serializable(package="fgrn_tf")
class Upscaler(ResTrunk):
  """Representation x `[N, h, w, 3]` -> HR `[N, h*s, w*s, 3]` (float, not clamped).

  EDSR's layout: a long skip around the ResBlocks closed by one conv, then a conv to 3*s*s
  channels and depth-to-space. The output is a residual on nearest-neighbour upsampling of x
  (tiling x over the s*s sub-pixel channels before the shuffle), the counterpart of Gd's box
  average; the last conv starts at zero, so a new Gu is exactly nearest-neighbour upscaling.
  """

  def __init__(self, scale: int, width: int, blocks: int, **kwargs):
    super().__init__(scale, width, blocks, **kwargs)
    self.body_end = layers.Conv2D(width, 3, padding="same", name="body_end",
                                  dtype=self.dtype_policy)
    self.tail = layers.Conv2D(3 * scale**2, 3, padding="same", kernel_initializer="zeros",
                              name="tail", dtype=self.dtype_policy)

  def build(self, input_shape):
    if input_shape[-1] != 3:
      raise ValueError(f"Upscaler expects [N, h, w, 3], received {tuple(input_shape)}")
    lead = self.build_trunk(input_shape, 3)
    self.body_end.build(lead + (self.width,))
    self.tail.build(lead + (self.width,))

  def call(self, x):
    s = self.scale
    h0 = self.head(x)
    h = h0
    for block in self.body:
      h = block(h)
    h = self.tail(h0 + self.body_end(h))
    return depth_to_space(ops.cast(h, x.dtype) + ops.tile(x, [1, 1, 1, s * s]), s)
