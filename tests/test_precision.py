"""Mixed precision (`fgrn_tf.models.precision`): Gd and Gu compute in the low precision, the
flow stays exact, training under every policy lowers the loss and resumes exactly, and the tools
take `--precision` for Keras models only."""

import os
import sys

import forked_tools
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import (
  ROOT,
  image_folder,
  losses_on_a_fixed_batch,
  randomize_zero_convs,
  tiny_config,
  wave_images,
  write_model_dir,
)

from fgrn_tf import config
from fgrn_tf import workdir as wd
from fgrn_tf.errors import UsageError
from fgrn_tf.models.fgrn import FGRN
from fgrn_tf.train import trainer
from fgrn_tf.train.callbacks import current_step

LOW = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _smoke(data_dir, precision, **train_changes):
  return config.preset("smoke").replace(
      train={"data_dirs": (data_dir,), "precision": precision, **train_changes})


@pytest.mark.parametrize("precision", list(LOW))
def test_convs_take_the_policy_and_the_flow_inverts_exactly(precision):
  keras.utils.set_random_seed(0)
  model = FGRN(tiny_config(), precision=precision)
  randomize_zero_convs(model.flow, seed=1, std=0.2)
  assert model.downscaler.body[0].conv1.compute_dtype == LOW[precision]
  assert model.upscaler.tail.compute_dtype == LOW[precision]
  assert {v.dtype for v in model.weights} == {"float32"}
  flow_convs = [c for cell in model.flow.cells for block in (cell.a, cell.b, cell.p)
                for c in [*block.convs, block.out]]
  assert {c.compute_dtype for c in flow_convs} == {"float32"}

  hr = tf.constant(wave_images(2, 32, 32))
  out = model(hr, training=True)
  assert {k: v.dtype for k, v in out.items()} == dict.fromkeys(out, tf.float32)
  x = out["x"]
  lr, logdet = model.flow.forward(x)
  back, inverse_logdet = model.flow.inverse(lr)
  assert float(tf.reduce_max(tf.abs(lr - x))) > 1e-3  # the flow is not the identity
  assert float(tf.reduce_max(tf.abs(back - x))) < 1e-5
  np.testing.assert_allclose(logdet.numpy(), -inverse_logdet.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_training_step_lowers_the_loss_as_float32_does(tmp_path, precision):
  hr = wave_images(4, 32, 32)
  runs = {}
  for policy in ("float32", precision):
    exp = _smoke(image_folder(tmp_path / "data"), policy, learning_rate=1e-3)
    model = trainer.build_model(exp)
    runs[policy] = losses_on_a_fixed_batch(model, hr, steps=8)
    assert current_step(model) == 10
  first, last = runs[precision]
  assert np.isfinite(last["grad_norm"]) and last["grad_norm"] > 0
  assert last["loss"] < 0.95 * first["loss"]
  reference = runs["float32"][1]["loss"]
  assert abs(last["loss"] - reference) < 0.01 * reference


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_resumed_mixed_run_matches_an_uninterrupted_one(tmp_path, precision, eager_functions):
  data = image_folder(tmp_path / "data")
  whole = _smoke(data, precision, steps=4, steps_per_epoch=2)
  first = _smoke(data, precision, steps=2, steps_per_epoch=2)
  out = open(os.devnull, "w")
  trainer.train(whole, tmp_path / "whole", stream=out)
  trainer.train(first, tmp_path / "parts", stream=out)
  assert trainer.train(whole, tmp_path / "parts", stream=out).steps == 4
  models = []
  for run in ("whole", "parts"):
    model = trainer.build_model(whole)
    model.load_weights(wd.backup_path(tmp_path / run))
    models.append(model)
  a, b = models
  assert current_step(a) == current_step(b) == 4
  names = [v.path for v in b.optimizer.variables]
  if precision == "mixed_float16":  # the loss scale is part of the state that must resume
    assert any("dynamic_scale" in n for n in names)
  for va, vb in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables,
                    strict=True):
    np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-5, err_msg=va.path)


def test_a_run_cannot_change_precision_when_it_resumes(tmp_path, eager_functions):
  data = image_folder(tmp_path / "data")
  out = open(os.devnull, "w")
  trainer.train(_smoke(data, "float32", steps=2, steps_per_epoch=2), tmp_path / "run",
                  stream=out)
  with pytest.raises(trainer.TrainError, match="precision: 'float32' -> 'mixed_float16'"):
    trainer.train(_smoke(data, "mixed_float16", steps=4, steps_per_epoch=2),
                    tmp_path / "run", stream=out)


def test_unknown_precision_is_refused():
  with pytest.raises(config.ConfigError, match="precision must be one of"):
    config.TrainConfig(precision="float8")
  with pytest.raises(UsageError, match="precision must be one of"):
    FGRN(tiny_config(), precision="half")


def test_a_workdir_loads_in_any_precision_and_bfloat16_stays_close(tmp_path):
  folder = write_model_dir(tmp_path / "model")
  full = wd.load_model(folder)
  half = wd.load_model(folder, precision="mixed_bfloat16")
  assert half.upscaler.head.compute_dtype == "bfloat16"
  for model in (full, half):  # Gd's and Gu's zero tails would make both exact skip paths
    randomize_zero_convs(model, seed=4)
  hr = wave_images(1, 48, 48, seed=3)
  a = full.upscale_float(full.downscale_float(hr)).numpy()
  b = half.upscale_float(half.downscale_float(hr)).numpy()
  assert 0 < np.abs(a - b).max() < 0.05


def test_fgrn_takes_precision_for_keras_models_and_refuses_it_for_exports(tmp_path):
  from fgrn_tf.runtime import backends

  folder = write_model_dir(tmp_path / "model")
  assert backends.load_backend(folder, precision="mixed_bfloat16").model.precision == \
      "mixed_bfloat16"
  (tmp_path / "up.tflite").write_bytes(b"not read")
  with pytest.raises(UsageError, match="applies to Keras models"):
    backends.load_backend(tmp_path / "up.tflite", precision="mixed_bfloat16")
  photo_dir = image_folder(tmp_path / "photos", count=1, size=32)
  run = forked_tools.run(
      [sys.executable, "-m", "fgrn_tf", "roundtrip", photo_dir, "--model", str(folder),
       "--precision", "mixed_bfloat16"], cwd=ROOT, timeout=300)
  assert run.returncode == 0, run.stderr
  assert "PSNR" in run.stdout
  run = forked_tools.run(
      [sys.executable, "-m", "fgrn_tf", "roundtrip", photo_dir, "--model", str(folder),
       "--precision", "double"], cwd=ROOT, timeout=300)
  assert run.returncode == 2
  assert run.stderr.strip().splitlines()[-1].startswith("fgrn: error: ")


def test_a_step_skipped_for_non_finite_float16_gradients_still_counts(tmp_path):
  exp = _smoke(image_folder(tmp_path / "data"), "mixed_float16")
  model = trainer.build_model(exp)
  optimizer = model.optimizer
  before = [v.numpy().copy() for v in model.trainable_variables]
  scale = float(optimizer.dynamic_scale.numpy())
  grads = [tf.fill(v.shape, np.inf) for v in model.trainable_variables]
  optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
  assert current_step(model) == 1  # the step counts: backups stay on epoch boundaries
  assert float(optimizer.dynamic_scale.numpy()) == scale / 2  # and the scale backs off
  for a, v in zip(before, model.trainable_variables, strict=True):
    np.testing.assert_array_equal(a, v.numpy())  # nothing was applied
