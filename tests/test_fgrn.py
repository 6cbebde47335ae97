"""The FGRN model: losses train the right parts, training lowers the loss, its validation
round trip, save/load, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import losses_on_a_fixed_batch, random_images, tiny_model, wave_images

from fgrn_tf import config
from fgrn_tf.data.imresize import imresize_np
from fgrn_tf.models import steps
from fgrn_tf.models.fgrn import FGRN, psnr01


def _grads(model, term):
  hr = tf.constant(random_images(2, 16, 16, seed=1))
  y_bic = model.guidance_target(hr)
  with tf.GradientTape(persistent=True) as tape:
    out = model(hr, training=True)
    rec, guide, _ = model._loss_terms(hr, y_bic, out)
    loss = tf.reduce_mean({"rec": rec, "guide": guide}[term])
  return {v.path: tape.gradient(loss, v) for v in model.trainable_variables}


def _touched_modules(grads):
  """Which of Gd, Gu, F get a non-zero gradient (paths are `<model name>/<module>/...`)."""
  return {k.split("/")[1] for k, g in grads.items()
          if g is not None and float(tf.reduce_max(tf.abs(g))) > 0}


def test_guidance_loss_leaves_downscaler_and_upscaler_untouched():
  assert _touched_modules(_grads(tiny_model(), "guide")) == {"F"}


def test_reconstruction_loss_leaves_flow_untouched():
  assert _touched_modules(_grads(tiny_model(), "rec")) == {"Gd", "Gu"}


def test_bicubic_guidance_trains_the_downscaler():
  assert _touched_modules(_grads(tiny_model(guidance="bicubic"), "guide")) == {"Gd"}


def test_ablation_modes_have_no_flow():
  assert tiny_model(guidance="none").flow is None
  assert tiny_model(guidance="bicubic").flow is None
  assert tiny_model().flow is not None


@pytest.mark.parametrize("guidance", ["none", "bicubic"])
def test_ablation_models_rescale_uint8_images_and_reload(guidance, tmp_path):
  from fgrn_tf import workdir

  model = tiny_model(guidance=guidance)
  hr = (255 * wave_images(1, 16, 20)).astype(np.uint8)
  lr = np.asarray(model.downscale(hr))
  sr = np.asarray(model.upscale(lr))
  assert lr.dtype == sr.dtype == np.uint8
  assert lr.shape == (1, 8, 10, 3) and sr.shape == hr.shape
  workdir.write_experiment(tmp_path, config.Experiment(model.model_config, config.smoke().train))
  model.save_weights(tmp_path / workdir.BEST_WEIGHTS)
  np.testing.assert_array_equal(np.asarray(workdir.load_model(tmp_path).downscale(hr)), lr)


@pytest.mark.parametrize("scale", [2, 4])
def test_parameter_count_within_3_percent_of_paper(scale):
  paper = {2: 1.33e6, 4: 3.35e6}[scale]
  total = FGRN(config.model_preset_for_scale(scale)).count_params()
  assert abs(total / paper - 1) < 0.03, total


def test_train_steps_lower_the_loss_on_a_fixed_batch():
  model = tiny_model(seed=2)
  model.compile(optimizer=steps.Adam(3e-3))
  hr = tf.constant(wave_images(4, 32, 32, seed=3))
  first, last = losses_on_a_fixed_batch(model, hr, 30)
  assert last["rec_loss"] < 0.5 * first["rec_loss"]
  assert last["guide_l1"] < 0.5 * first["guide_l1"]


def test_training_takes_hr_batches_alone_and_refuses_a_target():
  model = tiny_model()
  # Eager: `fit` and `train_step` as in training without the ~8 s trace (graph: test_training).
  model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
  hr = tf.constant(wave_images(2, 16, 16))
  dataset = tf.data.Dataset.from_tensor_slices(hr).batch(2).repeat()
  logs = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
  assert np.isfinite(logs["loss"]).all()
  with pytest.raises(ValueError, match="HR batches alone"):
    model.train_on_batch(hr, model.guidance_target(hr))


@pytest.mark.parametrize("scale", [2, 4])
def test_guidance_target_is_the_matlab_bicubic_of_the_very_batch(scale):
  model = tiny_model(scale=scale)
  hr8 = random_images(2, 8 * scale, 4 * scale, seed=scale, dtype=np.uint8)
  y_bic = model.guidance_target(tf.constant(hr8, tf.float32) / 255).numpy()
  for image, target in zip(hr8, y_bic, strict=True):
    np.testing.assert_allclose(target * 255, imresize_np(image, 1 / scale), atol=2e-3)


def test_test_roundtrip_measures_the_uint8_round_trip():
  model = tiny_model(seed=5)
  hr8 = (255 * wave_images(2, 16, 24, seed=6)).astype(np.uint8)
  hr = tf.constant(hr8, tf.float32) / 255
  out = model.test_roundtrip(hr)
  lr8 = model.downscale(hr8)
  np.testing.assert_array_equal(np.round(out["lr"].numpy() * 255), lr8)
  np.testing.assert_array_equal(np.round(out["sr"].numpy() * 255), model.upscale(lr8))
  np.testing.assert_allclose(out["psnr"], psnr01(hr, tf.cast(model.upscale(lr8), tf.float32) / 255),
                             rtol=1e-5)
  np.testing.assert_allclose(out["lr_psnr"], psnr01(model.guidance_target(hr), out["lr"]))


def test_inverse_still_exact_after_training_steps():
  model = tiny_model(seed=4)
  model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # as above
  hr = tf.constant(random_images(2, 32, 32, seed=5))
  for _ in range(5):
    model.train_on_batch(hr)
  x = tf.constant(random_images(2, 64, 64, seed=6))
  y, _ = model.flow.forward(x)
  back, _ = model.flow.inverse(y)
  assert np.abs(back.numpy() - x.numpy()).max() < 1e-5


def test_keras_save_and_load_give_identical_outputs(tmp_path):
  model = tiny_model(seed=7)
  hr = random_images(2, 16, 24, seed=8, dtype=np.uint8)
  path = tmp_path / "m.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  assert loaded.model_config == model.model_config
  np.testing.assert_array_equal(loaded.downscale(hr), model.downscale(hr))
  lr = model.downscale(hr)
  np.testing.assert_array_equal(loaded.upscale(lr), model.upscale(lr))
  out, out2 = model(hr.astype(np.float32) / 255), loaded(hr.astype(np.float32) / 255)
  np.testing.assert_array_equal(out["sr"], out2["sr"])


def test_downscale_and_upscale_shapes_and_dtypes():
  model = tiny_model()
  lr = model.downscale(random_images(3, 20, 12, dtype=np.uint8))
  assert lr.shape == (3, 10, 6, 3) and lr.dtype == tf.uint8
  hr = model.upscale(lr)
  assert hr.shape == (3, 20, 12, 3) and hr.dtype == tf.uint8


@pytest.mark.parametrize("shape,dtype,message", [
    ((1, 15, 16, 3), np.uint8, r"multiples of the scale 2; received 15x16"),
    ((1, 16, 16, 4), np.uint8, r"\[N, H, W, 3\].*received \(1, 16, 16, 4\)"),
    ((16, 16, 3), np.uint8, r"\[N, H, W, 3\].*received \(16, 16, 3\)"),
    ((1, 16, 16, 3), np.float32, r"must be uint8.*received dtype float32"),
])
def test_downscale_rejects_bad_input(shape, dtype, message):
  with pytest.raises(ValueError, match=message):
    tiny_model().downscale(np.zeros(shape, dtype))


def test_upscale_rejects_wrong_dtype():
  with pytest.raises(ValueError, match="uint8"):
    tiny_model().upscale(np.zeros((1, 8, 8, 3), np.float32))


def test_dynamic_shape_check_fails_inside_tf_function():
  model = tiny_model()
  fn = tf.function(model.downscale,
                   input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
  assert fn(np.zeros((1, 8, 8, 3), np.uint8)).shape == (1, 4, 4, 3)
  with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of the scale 2"):
    fn(np.zeros((1, 9, 8, 3), np.uint8))


TRAIN_ONE_STEP = """
import keras, numpy as np, tensorflow as tf
from fgrn_tf.config import Objective, smoke
from fgrn_tf.models.fgrn import FGRN
from fgrn_tf.models.steps import Adam
from tensorflow.python.util import _pywrap_util_port
# x4 through the codec holds every op kind of x2 (the strided bicubic, the flow, the JPEG too).
for model_config in (smoke().model.replace(scale=4),):
  model = FGRN(model_config, objective=Objective(codec_min_quality=70, codec_max_quality=90,
                                                 lr_weight=0.5))
  model.compile(optimizer=Adam(1e-3))  # the trainer's
  model.optimizer.build(model.trainable_variables)  # as the trainer does: one trace, not two
  hr = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
  logs = model.train_on_batch(hr, return_dict=True)
  assert np.isfinite(float(logs["loss"])), logs
print("ONEDNN", int(_pywrap_util_port.IsMklEnabled()))
"""


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_a_training_step_runs_with_onednn_on_and_off(onednn):
  # TF's kernels differ with and without oneDNN (its default depends on the CPU): a step that
  # runs on one CPU must run on the other (the plain depthwise kernel refuses unequal strides).
  import os
  import subprocess
  import sys

  env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
  proc = subprocess.run([sys.executable, "-c", TRAIN_ONE_STEP], capture_output=True, text=True,
                        timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"ONEDNN {onednn}" in proc.stdout
