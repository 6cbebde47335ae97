"""Convolutional building blocks of FGRN (Li et al., BMVC 2021): ResBlock and IRN's DenseBlock."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="fgrn_tf")
class ResBlock(layers.Layer):
  """EDSR-style residual block: `x + conv(relu(conv(x)))`, 3x3 convolutions, no norm.

  Input and output: float `[N, H, W, width]`.
  """

  def __init__(self, width: int, **kwargs):
    super().__init__(**kwargs)
    self.width = width
    self.conv1 = layers.Conv2D(width, 3, padding="same", activation="relu", name="conv1")
    self.conv2 = layers.Conv2D(width, 3, padding="same", name="conv2")

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


@keras.saving.register_keras_serializable(package="fgrn_tf")
class DenseBlock(layers.Layer):
  """IRN's dense block: 5 densely connected 3x3 convs, LeakyReLU(0.2) after the first 4.

  The last conv is zero-initialised so that a coupling built from such blocks starts as the
  identity (as in IRN and big_vision's Jet).

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
    self.convs = [
        layers.Conv2D(growth, 3, padding="same", kernel_initializer=init, name=f"conv{i + 1}")
        for i in range(4)
    ]
    self.out = layers.Conv2D(out_channels, 3, padding="same", kernel_initializer="zeros",
                             name="conv5")

  def build(self, input_shape):
    c = input_shape[-1]
    for conv in self.convs:
      conv.build(tuple(input_shape[:-1]) + (c,))
      c += self.growth
    self.out.build(tuple(input_shape[:-1]) + (c,))

  def call(self, x):
    features = x
    for conv in self.convs:
      y = ops.leaky_relu(conv(features), negative_slope=0.2)
      features = ops.concatenate([features, y], axis=-1)
    return self.out(features)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels, "growth": self.growth}
