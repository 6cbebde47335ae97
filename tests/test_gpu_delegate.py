"""TFLite's GPU delegate: the shipped halves use only ops it runs (by the rules of its own
checker, since TF's Analyzer no longer checks), the uint8 I/O rewrite computes the same bytes,
and the halves run at fixed and resized input shapes."""

import contextlib
import io
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from fgrn_tf.export import gpu_delegate
from fgrn_tf.models.quantize import round_half_up
from fgrn_tf.runtime import backends, shipped

SHIPPED = sorted(shipped.folder().glob("*/export/tflite/*/*.tflite"))


def _analyzer(content: bytes) -> str:
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    tf.lite.experimental.Analyzer.analyze(model_content=content, gpu_compatibility=True)
  return out.getvalue()


def _convert(fn, shape=(1, 8, 8, 3), dtype=tf.uint8) -> bytes:
  module = tf.Module()
  module.f = tf.function(fn, input_signature=[tf.TensorSpec(shape, dtype)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [module.f.get_concrete_function()], module)
  return converter.convert()


def _run(content: bytes, x: np.ndarray) -> np.ndarray:
  interpreter = tf.lite.Interpreter(model_content=content)
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _image_op(x):
  v = tf.cast(x, tf.float32) / 255.0
  v = tf.nn.depth_to_space(tf.tile(tf.tanh(v), [1, 1, 1, 4]), 2)
  return tf.cast(tf.clip_by_value(round_half_up(v * 255.0), 0.0, 255.0), tf.uint8)


def test_shipped_models_have_tflite_halves():
  # The phone-sized models ship their halves; the paper-sized ones their weights alone (size).
  assert {p.parent.parent.parent.parent.name for p in SHIPPED} >= {"mobile_x2", "mobile_x4"}
  assert {p.name for p in SHIPPED} == {"downscaler.tflite", "upscaler.tflite"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(shipped.folder())))
def test_every_shipped_half_uses_only_ops_the_gpu_delegate_runs(path: pathlib.Path):
  content = path.read_bytes()
  assert gpu_delegate.issues(content) == []
  assert "looks compatible with GPU delegate" in _analyzer(content)


def test_the_rules_find_ops_the_delegate_cannot_run_where_the_analyzer_finds_none():
  content = _convert(lambda x: tf.math.top_k(tf.round(tf.reshape(
      tf.cast(x, tf.float32), [1, -1])), 3).values)
  found = " | ".join(gpu_delegate.issues(content))
  assert "TOPK_V2" in found and "ROUND" in found and "CAST UINT8 -> FLOAT32" in found
  # TF 2.19 emptied the Analyzer's GPU check (tensorflow/tensorflow#77042): it passes anything.
  assert "looks compatible with GPU delegate" in _analyzer(content)


def test_uint8_io_rewrite_gives_the_same_bytes_and_clears_the_casts():
  content = _convert(_image_op)
  assert any("CAST" in issue for issue in gpu_delegate.issues(content))
  rewritten = gpu_delegate.uint8_io_as_quantize(content)
  assert gpu_delegate.issues(rewritten) == []
  x = np.arange(8 * 8 * 3, dtype=np.int64).reshape(1, 8, 8, 3) * 7 % 256
  x = x.astype(np.uint8)
  a, b = _run(content, x), _run(rewritten, x)
  assert b.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert gpu_delegate.uint8_io_as_quantize(rewritten) == rewritten  # nothing left to rewrite


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(shipped.folder())))
def test_every_shipped_half_runs_at_fixed_and_resized_shapes(path: pathlib.Path):
  half = backends.TFLiteBackend.from_files([path], num_threads=1)
  scale = half.scale
  rng = np.random.default_rng(0)
  for shape in ((1, 8 * scale, 12 * scale, 3), (2, 6 * scale, 4 * scale, 3),
                (1, 8 * scale, 12 * scale, 3)):
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    if path.name == "downscaler.tflite":
      y, expected = half.downscale(x), (shape[0], shape[1] // scale, shape[2] // scale, 3)
    else:
      y, expected = half.upscale(x), (shape[0], shape[1] * scale, shape[2] * scale, 3)
    assert y.shape == expected and y.dtype == np.uint8
