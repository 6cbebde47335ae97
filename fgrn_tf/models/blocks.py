"""Convolutional building blocks of FGRN (Li et al., BMVC 2021): ResBlock, the trunk Gd and Gu
share, and IRN's DenseBlock."""

from __future__ import annotations

import keras
from keras import layers, ops

from fgrn_tf.models import native


@keras.saving.register_keras_serializable(package="fgrn_tf")
class ResBlock(layers.Layer):
  """EDSR-style residual block: `x + conv(relu(conv(x)))`, 3x3 convolutions, no norm.

  Input and output: float `[N, H, W, width]`.
  """

  def __init__(self, width: int, **kwargs):
    super().__init__(**kwargs)
    self.width = width
    dtype = self.dtype_policy  # Keras does not hand a layer's policy down to its sublayers
    self.conv1 = layers.Conv2D(width, 3, padding="same", activation="relu", name="conv1",
                               dtype=dtype)
    self.conv2 = layers.Conv2D(width, 3, padding="same", name="conv2", dtype=dtype)

  def build(self, input_shape):
    if input_shape[-1] != self.width:
      raise ValueError(f"ResBlock of width {self.width} received {input_shape[-1]} channels "
                       f"(input shape {tuple(input_shape)})")
    self.conv1.build(input_shape)
    self.conv2.build(tuple(input_shape[:-1]) + (self.width,))

  def call(self, x):
    return x + self.conv2(self.conv1(x))

  def get_config(self):
    return {**super().get_config(), "width": self.width}


class ResTrunk(layers.Layer):
  """What Gd and Gu share: a 3x3 conv `head` to `width` channels and a `body` of ResBlocks.

  Subclasses add their own tail and `call`; `build_trunk` builds the shared part. Under a mixed
  dtype policy the trunk computes in the low precision while the subclasses keep their skip
  paths (the box average, the nearest-neighbour tiling) and their outputs in float32: x and the
  HR image live on the 8-bit grid, which bfloat16 cannot hold (200/255 is off by 0.4 levels).
  """

  def __init__(self, scale: int, width: int, blocks: int, **kwargs):
    # Inputs arrive in float32 (no autocast): the skip paths need them exact; the convs cast.
    super().__init__(autocast=False, **kwargs)
    self.scale = scale
    self.width = width
    self.blocks = blocks
    dtype = self.dtype_policy
    self.head = layers.Conv2D(width, 3, padding="same", name="head", dtype=dtype)
    self.body = [ResBlock(width, name=f"res{i}", dtype=dtype) for i in range(blocks)]

  def build_trunk(self, input_shape, in_channels: int) -> tuple:
    """Builds head (for `in_channels` inputs) and body; returns the leading dims of the shape."""
    lead = tuple(input_shape[:-1])
    self.head.build(lead + (in_channels,))
    for block in self.body:
      block.build(lead + (self.width,))
    return lead

  def get_config(self):
    return {**super().get_config(), "scale": self.scale, "width": self.width,
            "blocks": self.blocks}


@keras.saving.register_keras_serializable(package="fgrn_tf")
class DenseBlock(layers.Layer):
  """IRN's dense block: 5 densely connected 3x3 convs, LeakyReLU(0.2) after the first 4.

  The last conv is zero-initialised so that a coupling built from such blocks starts as the
  identity (as in IRN and big_vision's Jet).

  The weights are those of IRN's layout (conv k reads the concatenation of x and y1..y(k-1)),
  but `call` never builds that concatenation. Each source (x, then y1..y4) goes through ONE conv
  whose kernel is that source's input-channel slice of every later conv, side by side on the
  output axis; the first `growth` output channels complete the next y, the others are carried
  on as partial sums. On this CPU the concatenations and the narrow 1- or 2-channel last conv
  took over half the block's time (a timing study, since retired). Same sums, another order:
  outputs agree with the concatenating form to float32 rounding (tests/test_blocks.py).
  The slicing is on weights only, so it constant-folds in an exported graph or TFLite model.

  Input `[N, H, W, C_in]`, output `[N, H, W, out_channels]`.
  """

  def __init__(self, out_channels: int, growth: int = 32, **kwargs):
    super().__init__(**kwargs)
    self.out_channels = out_channels
    self.growth = growth
    # IRN scales a Xavier init by 0.1 in the first four convs; it keeps the coupling close to
    # the identity early in training, when the zero last conv starts to move.
    init = keras.initializers.VarianceScaling(scale=0.01, mode="fan_avg",
                                              distribution="uniform")
    dtype = self.dtype_policy
    self.convs = [
        layers.Conv2D(growth, 3, padding="same", kernel_initializer=init, name=f"conv{i + 1}",
                      dtype=dtype)
        for i in range(4)
    ]
    self.out = layers.Conv2D(out_channels, 3, padding="same", kernel_initializer="zeros",
                             name="conv5", dtype=dtype)

  def build(self, input_shape):
    c = input_shape[-1]
    if c is None:
      raise ValueError(f"DenseBlock needs a known channel count, received {tuple(input_shape)}")
    self.in_channels = c
    for conv in self.convs:
      conv.build(tuple(input_shape[:-1]) + (c,))
      c += self.growth
    self.out.build(tuple(input_shape[:-1]) + (c,))

  def source_kernels(self, dtype="float32"):
    """Kernels of the per-source convs, from the stored ones.

    Returns:
      (kernels, bias): `kernels[s]` `[3, 3, C_s, growth * (4 - s) + out_channels]` maps source
      s (0 = x, s = y_s) to the pre-activations of convs s+1..5, in that order on the last axis;
      `bias` `[4 * growth + out_channels]` holds the five biases in the same order.
    """
    convs = [*self.convs, self.out]
    sizes = [self.in_channels] + [self.growth] * 4  # of the sources, on a kernel's input axis
    # pieces[k][s]: conv k+1's kernel slice that reads source s (one split per kernel).
    pieces = [native.split(ops.cast(conv.kernel, dtype), sizes[:k + 1], axis=2)
              for k, conv in enumerate(convs)]
    kernels = [ops.concatenate([p[s] for p in pieces[s:]], axis=-1) for s in range(5)]
    return kernels, ops.concatenate([ops.cast(conv.bias, dtype) for conv in convs], axis=0)

  def call(self, x):
    kernels, bias = self.source_kernels(x.dtype)
    g = self.growth
    z = ops.conv(x, kernels[0], padding="same") + bias  # the biases start the sums
    for kernel in kernels[1:]:
      y, rest = native.split(z, [g, z.shape[-1] - g])
      z = rest + ops.conv(ops.leaky_relu(y, negative_slope=0.2), kernel, padding="same")
    return z

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels, "growth": self.growth}
