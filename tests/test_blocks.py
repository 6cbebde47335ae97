"""DenseBlock's per-source formulation: same outputs, gradients and weights as IRN's concat form."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from fgrn_tf.models import blocks


# Named like the layer it stands for: Keras keys the weights in a .weights.h5 file by class name.
class DenseBlock(layers.Layer):
  """The concatenating dense block as written before the per-source one: the reference."""

  def __init__(self, out_channels, growth=32, **kwargs):
    super().__init__(**kwargs)
    self.convs = [layers.Conv2D(growth, 3, padding="same", name=f"conv{i + 1}") for i in range(4)]
    self.out = layers.Conv2D(out_channels, 3, padding="same", name="conv5")
    self.growth = growth

  def build(self, input_shape):
    c = input_shape[-1]
    for conv in self.convs:
      conv.build(tuple(input_shape[:-1]) + (c,))
      c += self.growth
    self.out.build(tuple(input_shape[:-1]) + (c,))

  def call(self, x):
    features = x
    for conv in self.convs:
      y = keras.ops.leaky_relu(conv(features), negative_slope=0.2)
      features = keras.ops.concatenate([features, y], axis=-1)
    return self.out(features)


def _randomized(layer, in_channels, seed):
  """`layer` built for `in_channels`, every weight (zero last conv, biases) set at random."""
  if not layer.built:
    layer.build((None, None, None, in_channels))
  rng = np.random.default_rng(seed)
  for v in layer.weights:
    v.assign(rng.normal(0, 0.2, v.shape).astype(np.float32))
  return layer


def _copy_weights(src, dst):
  for a, b in zip(src.weights, dst.weights, strict=True):
    b.assign(a)


# The shapes F uses: a maps the 2 other channels to 1, b and p map the pivot to 2.
@pytest.mark.parametrize("in_channels,out_channels", [(2, 1), (1, 2), (3, 3)])
def test_dense_block_matches_concatenating_reference(in_channels, out_channels):
  block = _randomized(blocks.DenseBlock(out_channels, growth=8), in_channels, seed=in_channels)
  ref = DenseBlock(out_channels, growth=8)
  ref.build((None, None, None, in_channels))
  _copy_weights(block, ref)
  x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (2, 12, 10, in_channels)), tf.float32)
  expected = ref(x).numpy()
  assert np.abs(expected).max() > 0.1, "the test needs a block with a non-trivial output"
  np.testing.assert_allclose(block(x).numpy(), expected, atol=1e-5, rtol=1e-5)


def test_dense_block_gradients_match_concatenating_reference():
  block = _randomized(blocks.DenseBlock(2, growth=8), 1, seed=3)
  ref = DenseBlock(2, growth=8)
  ref.build((None, None, None, 1))
  _copy_weights(block, ref)
  x = tf.constant(np.random.default_rng(4).uniform(-1, 1, (2, 9, 9, 1)), tf.float32)
  target = tf.constant(np.random.default_rng(5).normal(size=(2, 9, 9, 2)), tf.float32)
  grads = []
  for layer in (block, ref):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.square(layer(x) - target))
    grads.append(tape.gradient(loss, [x, *layer.trainable_variables]))
  assert len(grads[0]) == 11  # x and 5 kernels + 5 biases
  for got, want in zip(*grads, strict=True):
    assert float(tf.reduce_max(tf.abs(want))) > 0
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5 * float(
        tf.reduce_max(tf.abs(want))), rtol=1e-5)


def test_dense_block_keeps_irn_weight_names_and_shapes():
  block = blocks.DenseBlock(2, growth=4, name="p")
  block.build((None, None, None, 1))
  shapes = {v.path: tuple(v.shape) for v in block.weights}
  expected = {}
  for i, c in enumerate((1, 5, 9, 13, 17)):
    n = 4 if i < 4 else 2
    expected[f"p/conv{i + 1}/kernel"] = (3, 3, c, n)
    expected[f"p/conv{i + 1}/bias"] = (n,)
  assert shapes == expected
  assert not block.out.kernel.numpy().any(), "the last conv must start at zero"


def test_weights_saved_with_concatenating_layout_load(tmp_path):
  x = keras.Input((None, None, 2))
  old = keras.Model(x, DenseBlock(1, growth=4, name="a")(x))
  _randomized(old.layers[-1], 2, seed=6)
  old.save_weights(tmp_path / "old.weights.h5")
  x = keras.Input((None, None, 2))
  new = keras.Model(x, blocks.DenseBlock(1, growth=4, name="a")(x))
  new.load_weights(tmp_path / "old.weights.h5")
  images = np.random.default_rng(7).uniform(size=(1, 8, 8, 2)).astype(np.float32)
  np.testing.assert_allclose(new(images).numpy(), old(images).numpy(), atol=1e-5)


def test_dense_block_config_round_trip_rebuilds_the_same_block():
  block = _randomized(blocks.DenseBlock(2, growth=4, name="b"), 1, seed=8)
  clone = blocks.DenseBlock.from_config(block.get_config())
  clone.build((None, None, None, 1))
  _copy_weights(block, clone)
  x = np.random.default_rng(9).uniform(size=(1, 6, 6, 1)).astype(np.float32)
  np.testing.assert_array_equal(clone(x).numpy(), block(x).numpy())
  assert (clone.out_channels, clone.growth, clone.name) == (2, 4, "b")


def test_dense_block_converts_to_tflite_with_weight_slicing_folded():
  # The per-source kernels are slices of the weights: frozen, they must fold into the five
  # CONV_2D filters, leaving only the activation ops (builtins, no Flex).
  from ai_edge_litert.interpreter import Interpreter
  from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

  from fgrn_tf.runtime import litert

  block = _randomized(blocks.DenseBlock(2, growth=4), 1, seed=10)
  fn = tf.function(block.call, input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
  frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
  converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], block)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  content = converter.convert()
  litert.check_builtin_ops(content, "dense block")
  interpreter = Interpreter(model_content=content)
  counts = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
  assert counts == {"CONV_2D": 5, "SPLIT_V": 4, "LEAKY_RELU": 4, "ADD": 4}, counts
  interpreter.allocate_tensors()
  x = np.random.default_rng(11).uniform(size=(1, 8, 8, 1)).astype(np.float32)
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_allclose(y, block(x).numpy(), atol=1e-5)
