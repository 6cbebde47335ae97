"""The differentiable JPEG: OpenCV's round trip in the forward pass, useful gradients backward."""

import json
import os
import subprocess
import sys
import textwrap

import forked_tools
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, photo

from fgrn_tf.data.codecs import Codec
from fgrn_tf.data.images import read_rgb8
from fgrn_tf.data.imresize import bicubic_downscale
from fgrn_tf.metrics.psnr_ssim import mod_crop, psnr, rgb_to_y
from fgrn_tf.models.jpeg import CHROMA_TABLE, LUMA_TABLE, jpeg, quality_table

SET5 = ("baby", "bird", "butterfly", "head", "woman")
# Position in a DQT segment (zigzag order) of each natural-order entry.
ZIGZAG = np.array([
    0, 1, 5, 6, 14, 15, 27, 28, 2, 4, 7, 13, 16, 26, 29, 42,
    3, 8, 12, 17, 25, 30, 41, 43, 9, 11, 18, 24, 31, 40, 44, 53,
    10, 19, 23, 32, 39, 45, 52, 54, 20, 22, 33, 38, 46, 51, 55, 60,
    21, 34, 37, 47, 50, 56, 59, 61, 35, 36, 48, 49, 57, 58, 62, 63])


def _opencv(rgb, quality):
  return Codec("jpeg", quality).roundtrip(rgb)[0]


def _simulated(rgb, qualities, rounding="ste"):
  """uint8 `[H, W, 3]` at each quality -> uint8 `[len(qualities), H, W, 3]`."""
  batch = np.repeat(rgb[None].astype(np.float32) / 255, len(qualities), 0)
  out = jpeg(batch, np.array(qualities), rounding).numpy()
  return np.round(out * 255).astype(np.uint8)


def _file_tables(data: bytes) -> list[np.ndarray]:
  """The quantization tables of a baseline JPEG file, natural order `[8, 8]`."""
  tables, at = [], 2
  while data[at] == 0xFF and data[at + 1] != 0xDA:  # up to the start of scan
    length = int.from_bytes(data[at + 2:at + 4], "big")
    if data[at + 1] == 0xDB:
      body = data[at + 4:at + 2 + length]
      for start in range(0, len(body), 65):  # 8-bit tables: 1 byte Pq/Tq, then 64 entries
        tables.append(np.frombuffer(body[start + 1:start + 65], np.uint8)[ZIGZAG].reshape(8, 8))
    at += 2 + length
  return tables


@pytest.mark.parametrize("quality", [1, 10, 30, 50, 75, 95, 100])
def test_quality_tables_are_the_ones_opencv_writes(quality):
  luma, chroma = quality_table(quality)
  written = _file_tables(Codec("jpeg", quality).encode(photo(16, 16)))
  np.testing.assert_array_equal(luma, written[0])
  np.testing.assert_array_equal(chroma, written[1])


def test_quality_tables_round_float_qualities_and_batch():
  luma, chroma = quality_table(tf.constant([50.0, 74.6, 100.0]))
  assert luma.shape == chroma.shape == (3, 8, 8)
  np.testing.assert_array_equal(luma[0], LUMA_TABLE)
  np.testing.assert_array_equal(chroma[0], CHROMA_TABLE)
  np.testing.assert_array_equal(luma[1], quality_table(75)[0])
  np.testing.assert_array_equal(chroma[2], np.ones((8, 8)))


@pytest.mark.parametrize("size", [(37, 53), (16, 16), (9, 4), (2, 9), (1, 1)])
def test_ste_output_is_opencvs_decoded_file_bit_for_bit(size):
  qualities = [1, 30, 50, 75, 90, 95, 100]
  rng = np.random.default_rng(sum(size))
  for rgb in (photo(*size, seed=1), rng.integers(0, 256, size + (3,), dtype=np.uint8)):
    out = _simulated(rgb, qualities)
    for q, image in zip(qualities, out, strict=True):
      np.testing.assert_array_equal(image, _opencv(rgb, q), err_msg=f"{size} q={q}")


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_with_constant_qualities_it_is_still_bit_exact(jit_compile):
  # Constant tables invite Grappler and XLA to divide by reciprocals; the floors must not move.
  qualities = list(range(5, 101, 5))
  rgb = photo(24, 40, seed=2)
  x = np.repeat(rgb[None].astype(np.float32) / 255, len(qualities), 0)
  out = tf.function(lambda x: jpeg(x, qualities), jit_compile=jit_compile)(x).numpy()
  for q, image in zip(qualities, np.round(out * 255).astype(np.uint8), strict=True):
    np.testing.assert_array_equal(image, _opencv(rgb, q), err_msg=f"q={q}")


def test_set5_lrs_match_opencvs_jpeg(data_root):
  qualities = [50, 75, 90, 95]
  worst = {q: np.inf for q in qualities}
  for name in SET5:
    hr = mod_crop(read_rgb8(data_root / "Set5" / f"{name}.png"), 2)
    lr = bicubic_downscale(hr[None].astype(np.float32), 2)[0].numpy()
    lr = np.clip(np.round(lr), 0, 255).astype(np.uint8)
    for q, image in zip(qualities, _simulated(lr, qualities), strict=True):
      worst[q] = min(worst[q], psnr(rgb_to_y(image), rgb_to_y(_opencv(lr, q))))
  assert min(worst.values()) >= 40.0, worst


def test_cubic_rounding_stays_close_to_the_real_codec():
  rgb = photo(48, 64)
  for q, image in zip([50, 95], _simulated(rgb, [50, 95], "cubic"), strict=True):
    # Soft rounding moves some samples by a few levels (46-56 dB Y on the Set5 LRs).
    assert psnr(rgb_to_y(image), rgb_to_y(_opencv(rgb, q))) > 40.0, q


def _gradient(images, quality, rounding, loss):
  x = tf.constant(images)
  with tf.GradientTape() as tape:
    tape.watch(x)
    value = loss(jpeg(x, quality, rounding))
  return tape.gradient(value, x).numpy()


def test_straight_through_gradient_of_the_sum_is_one_per_input_value():
  # Rounding and clamps pass the gradient unchanged, the DCTs cancel, and the chroma filters'
  # adjoints sum to one per sample (edges included, for even sizes): d sum / d x = 1.
  images = np.random.default_rng(0).uniform(0, 1, (2, 24, 40, 3)).astype(np.float32)
  grad = _gradient(images, 75, "ste", tf.reduce_sum)
  np.testing.assert_allclose(grad, 1.0, atol=1e-4)


@pytest.mark.parametrize("rounding", ["ste", "cubic"])
def test_gradients_are_finite_and_reach_every_input_value(rounding):
  rng = np.random.default_rng(1)
  images = rng.uniform(0, 1, (2, 21, 35, 3)).astype(np.float32)  # partial blocks and MCUs
  target = tf.constant(rng.uniform(0, 1, images.shape).astype(np.float32))
  for loss in (tf.reduce_sum, lambda y: tf.reduce_mean(tf.abs(y - target))):
    grad = _gradient(images, [30, 90], rounding, loss)
    assert np.all(np.isfinite(grad))
    assert np.all(grad != 0), f"{np.sum(grad == 0)} zero entries"


@pytest.mark.parametrize("level, slope", [(129, 0.75), (130, 0.0)])
def test_cubic_gradient_is_the_slope_of_the_soft_rounding(level, slope):
  # A gray MCU at quality 50: every chroma and AC coefficient is 0 and the luma DC coefficient
  # is (level - 128) / 2, where d(round(c) + (c - round(c))^3)/dc = 3 (c - round(c))^2 = slope.
  # Only the DC path is left: each Y sample gets slope x 3 (one per output channel), and
  # R, G, B get their shares 0.299, 0.587, 0.114 of it.
  images = np.full((1, 16, 16, 3), level / 255, np.float32)
  grad = _gradient(images, 50, "cubic", tf.reduce_sum)
  np.testing.assert_allclose(grad, np.broadcast_to(3 * slope * np.array([0.299, 0.587, 0.114]),
                                                   grad.shape), atol=1e-5)


def test_each_example_gets_its_own_quality():
  rgb = photo(40, 56)
  low, high = _simulated(rgb, [30, 95])
  error = lambda image: np.mean((image.astype(np.float64) - rgb) ** 2)
  assert error(low) > error(high) > 0
  np.testing.assert_array_equal(low, _simulated(rgb, [30])[0])


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (17, 16), (33, 50)])
def test_output_has_the_input_shape_and_range(size):
  x = np.random.default_rng(2).uniform(-0.2, 1.2, (3,) + size + (3,)).astype(np.float32)
  out = jpeg(x, 80).numpy()
  assert out.shape == x.shape and out.dtype == np.float32
  assert out.min() >= 0 and out.max() <= 1
  np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)


def test_graph_mode_with_unknown_sizes_matches_eager():
  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None])])
  def step(x, q):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = jpeg(x, q)
      loss = tf.reduce_sum(y)
    return y, tape.gradient(loss, x)

  # A chroma plane 2 wide decodes with box upsampling, wider ones with the triangle filter.
  for size in [(20, 35), (6, 4)]:
    x = np.random.default_rng(3).uniform(0, 1, (2,) + size + (3,)).astype(np.float32)
    y, grad = step(x, tf.constant([40.0, 85.0]))
    np.testing.assert_array_equal(y, jpeg(x, [40, 85]))
    assert np.all(np.isfinite(grad)) and np.all(grad != 0)


def test_xla_gives_the_same_values():
  x = np.random.default_rng(4).uniform(0, 1, (2, 24, 40, 3)).astype(np.float32)
  compiled = tf.function(lambda x: jpeg(x, [50, 90]), jit_compile=True)
  np.testing.assert_array_equal(compiled(x), jpeg(x, [50, 90]))


def test_rejects_an_unknown_rounding():
  with pytest.raises(ValueError, match="rounding"):
    jpeg(np.zeros((1, 8, 8, 3), np.float32), 75, rounding="round")


MIRRORED_SCRIPT = textwrap.dedent("""
  import json
  import tensorflow as tf
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  import numpy as np
  from fgrn_tf.models.jpeg import jpeg

  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  x = np.random.default_rng(0).uniform(0, 1, (4, 20, 28, 3)).astype(np.float32)
  q = np.array([30.0, 60.0, 80.0, 95.0], np.float32)
  data = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices((x, q)).batch(4))

  @tf.function
  def step(batch):
    def replica(x, q):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = jpeg(x, q, "cubic")
        loss = tf.reduce_sum(tf.abs(y - 0.5))
      return y, tape.gradient(loss, x)
    return strategy.run(replica, args=batch)

  y, grad = step(next(iter(data)))
  y = np.concatenate(strategy.experimental_local_results(y))
  grad = np.concatenate(strategy.experimental_local_results(grad))
  print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                    "same": bool(np.array_equal(y, jpeg(x, q, "cubic").numpy())),
                    "finite": bool(np.all(np.isfinite(grad))), "zeros": int(np.sum(grad == 0))}))
""")


def test_runs_under_mirrored_strategy_on_two_logical_cpus():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = forked_tools.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=ROOT, env=env,
                            timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out == {"replicas": 2, "same": True, "finite": True, "zeros": 0}


JAX_SCRIPT = textwrap.dedent("""
  import json
  import sys

  import numpy as np

  from fgrn_tf.data.codecs import Codec
  from fgrn_tf.models.jpeg import jpeg, require_float64

  try:
    jpeg(np.zeros((1, 8, 8, 3), np.float32), 75)
    error = None
  except ValueError as e:
    error = str(e)
  require_float64()
  import jax

  qualities = np.array([10, 50, 90])
  rng = np.random.default_rng(0)
  mismatches = []
  for size, modes in [((37, 53), ("eager", "jit")), ((9, 4), ("jit",))]:
    rgb = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    batch = np.repeat(rgb[None].astype(np.float32) / 255, len(qualities), 0)
    for mode in modes:
      fn = jax.jit(jpeg, static_argnames="rounding") if mode == "jit" else jpeg
      out = np.round(np.asarray(fn(batch, qualities, "ste")) * 255).astype(np.uint8)
      for q, image in zip(qualities, out):
        if not np.array_equal(image, Codec("jpeg", int(q)).roundtrip(rgb)[0]):
          mismatches.append(f"{mode} {size} q={q}")
  x = rng.uniform(0, 1, (2, 21, 35, 3)).astype(np.float32)
  grad = np.asarray(jax.jit(jax.grad(lambda x: jpeg(x, np.array([30, 90])).sum()))(x))
  print(json.dumps({"error": error, "mismatches": mismatches,
                    "finite": bool(np.all(np.isfinite(grad))), "zeros": int(np.sum(grad == 0)),
                    "tensorflow": "tensorflow" in sys.modules}))
""")


def test_jax_backend_matches_opencv_without_tensorflow(jax_env):
  pytest.importorskip("jax")
  env = {k: v for k, v in jax_env.items() if k != "JAX_ENABLE_X64"}
  env.update(TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, "-c", JAX_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  # Without require_float64 the exact track would be truncated to float32: a clear error instead.
  error = out.pop("error")
  assert error and "\n" not in error and "require_float64()" in error, error
  assert out == {"mismatches": [], "finite": True, "zeros": 0, "tensorflow": False}
