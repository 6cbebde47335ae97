"""Gd, the downscaler of FGRN (Li et al., BMVC 2021): squeeze, conv, ResBlocks, conv to RGB."""

from __future__ import annotations

import keras
from keras import layers, ops

from fgrn_tf.models.blocks import ResTrunk
from fgrn_tf.models.pixel_shuffle import space_to_depth


@keras.saving.register_keras_serializable(package="fgrn_tf")
class Downscaler(ResTrunk):
  """HR `[N, H, W, 3]` in [0, 1] -> representation x `[N, H/s, W/s, 3]`.

  All convolutions run at the LR resolution after the space-to-depth squeeze. The output is a
  residual on top of the s x s box average and the last conv starts at zero, so a new network
  is exactly a box downscaler: short CPU runs start from a sensible image instead of spending
  their first thousand steps finding the colours (and x starts inside [0, 1], where the
  quantizer passes gradients).
  """

  def __init__(self, scale: int, width: int, blocks: int, **kwargs):
    super().__init__(scale, width, blocks, **kwargs)
    self.tail = layers.Conv2D(3, 3, padding="same", kernel_initializer="zeros", name="tail",
                              dtype=self.dtype_policy)

  def build(self, input_shape):
    if input_shape[-1] != 3:
      raise ValueError(f"Downscaler expects RGB input [N, H, W, 3], received {tuple(input_shape)}")
    lead = self.build_trunk(input_shape, 3 * self.scale**2)
    self.tail.build(lead + (self.width,))

  def call(self, hr):
    s = self.scale
    h = self.head(space_to_depth(hr, s))
    for block in self.body:
      h = block(h)
    return ops.average_pool(hr, s, s, "valid") + ops.cast(self.tail(h), hr.dtype)
