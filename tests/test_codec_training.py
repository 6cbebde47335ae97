"""Codec-aware FGRN (issue 16): the LR goes through a differentiable JPEG in training, the
gradient reaches the right networks, the loss falls, and the LR-likeness knob pulls on Gd."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import losses_on_a_fixed_batch, tiny_model, wave_images

from fgrn_tf import config
from fgrn_tf.models import jpeg, steps

CODEC = {"codec_min_quality": 60, "codec_max_quality": 90}


def grads_by_module(model, hr):
  """{"Gd"|"Gu"|"F": global gradient norm} of one training loss on `hr`."""
  variables = model.trainable_variables
  grads, _ = model.gradients(hr, variables)
  norms = {}
  for v, g in zip(variables, grads, strict=True):
    part = "Gd" if "/Gd/" in f"/{v.path}/" or v.path.startswith("Gd") else (
        "Gu" if v.path.startswith("Gu") or "/Gu/" in v.path else "F")
    assert g is None or np.isfinite(g.numpy()).all(), v.path
    norms[part] = norms.get(part, 0.0) + (0.0 if g is None else float(tf.reduce_sum(g * g)))
  return {k: v ** 0.5 for k, v in norms.items()}


@pytest.fixture(scope="module")
def hr():
  return tf.constant(wave_images(2, 32, 32, seed=1))


def test_reconstruction_through_the_codec_reaches_the_downscaler(hr):
  norms = grads_by_module(tiny_model(seed=1, **CODEC), hr)
  assert norms["Gd"] > 0 and norms["Gu"] > 0 and norms["F"] > 0


def test_decoder_side_training_leaves_the_downscaler_to_its_own_losses(hr):
  norms = grads_by_module(tiny_model(seed=1, **CODEC, codec_gradient="decoder",
                                     guidance="flow"), hr)
  assert norms["Gd"] == 0.0 and norms["Gu"] > 0


def test_lr_weight_pulls_the_downscaler_toward_the_bicubic_lr(hr):
  plain = grads_by_module(tiny_model(seed=1, codec_gradient="decoder", **CODEC), hr)
  pulled = grads_by_module(tiny_model(seed=1, codec_gradient="decoder", lr_weight=1.0,
                                      **CODEC), hr)
  assert plain["Gd"] == 0.0 and pulled["Gd"] > 0


def test_codec_training_lowers_the_loss_on_a_fixed_batch(hr):
  model = tiny_model(seed=2, **CODEC, codec_prob=1.0)
  model.compile(optimizer=steps.Adam(3e-3))
  first, last = losses_on_a_fixed_batch(model, hr, steps=15)
  assert last["rec_loss"] < first["rec_loss"]


def test_codec_fields_are_checked_and_travel_in_the_config():
  with pytest.raises(config.ConfigError, match="codec qualities"):
    config.smoke().objective.replace(codec_min_quality=90, codec_max_quality=80)
  with pytest.raises(config.ConfigError, match="codec_prob"):
    config.smoke().objective.replace(codec_prob=1.5)
  e = config.codec_x2()
  again = config.Experiment.from_json(e.to_json())
  assert again == e and again.objective.trains_through_codec and e.train.init_from == "shipped"
  assert not config.cpu_x2().objective.trains_through_codec
  # The network is cpu_x2's: the codec is how it is trained, not what it is.
  assert e.model == config.cpu_x2().model


def test_a_config_written_before_the_objective_had_its_own_part_still_reads():
  e = config.codec_x2()
  d = json.loads(e.to_json())
  d["model"].update(d.pop("objective"))  # fgrn-tf 0.2's config.json
  assert config.Experiment.from_json(json.dumps(d)) == e


def test_validation_of_a_codec_model_goes_through_the_codec_evaluation_reports(hr):
  # OpenCV's JPEG at the validation quality, as fgrn-eval's --codec jpeg:90 stores the LR.
  from fgrn_tf.data import codecs
  from fgrn_tf.models.fgrn import VALIDATION_QUALITY, psnr01

  model = tiny_model(seed=1, **CODEC)
  out = model.test_roundtrip(hr)
  assert "psnr_jpeg" in out and float(out["psnr_jpeg"][0]) < float(out["psnr"][0])
  codec = codecs.parse(f"jpeg:{VALIDATION_QUALITY}")
  lr8 = np.round(out["lr"].numpy() * 255).astype(np.uint8)
  decoded = np.stack([codec.decode(codec.encode(im)) for im in lr8]).astype(np.float32) / 255
  sr = np.round(np.clip(model.upscale_float(decoded).numpy(), 0, 1) * 255) / 255
  np.testing.assert_allclose(out["psnr_jpeg"], psnr01(hr, sr), atol=1e-3)
  assert "psnr_jpeg" not in tiny_model(seed=1).test_roundtrip(hr)


def test_the_simulation_is_what_the_training_path_uses(hr, monkeypatch):
  calls = []
  real = jpeg.jpeg
  monkeypatch.setattr(jpeg, "jpeg", lambda x, q, **k: calls.append(q) or real(x, q, **k))
  tiny_model(seed=1, **CODEC)(hr, training=True)
  assert len(calls) == 1
  q = calls[0].numpy()
  assert q.shape == (2,) and (q >= 60).all() and (q <= 90).all()


def _fit_and_score(codec: bool, quality: int = 50, steps: int = 150):
  """A small network fitted to one photo-like image; its round trip through TF's libjpeg at
  `quality` and lossless (RGB PSNR, dB)."""
  from helpers import photo

  from fgrn_tf.models.fgrn import psnr01
  from fgrn_tf.models.quantize import quantize
  from fgrn_tf.train import trainer

  objective = ({"codec_min_quality": quality, "codec_max_quality": quality, "codec_prob": 1.0}
               if codec else {})
  model = trainer.build_model(config.preset("smoke").replace(
      model={"width": 16, "flow_cells": 1, "flow_growth": 8},
      train={"learning_rate": 2e-3, "seed": 0}, objective=objective))
  hr = tf.constant(np.repeat(photo(48, 48, seed=0)[None], 4, axis=0) / 255.0, tf.float32)
  for _ in range(steps):
    model.train_on_batch(hr)
  lr = model.downscale_float(hr[:1])
  coded = tf.image.adjust_jpeg_quality(lr[0], quality)[None]
  through = float(psnr01(hr[:1], quantize(model.upscale_float(coded)))[0])
  lossless = float(psnr01(hr[:1], quantize(model.upscale_float(lr)))[0])
  return through, lossless


def test_a_codec_aware_model_beats_the_plain_one_through_jpeg_after_a_short_fit():
  plain_jpeg, plain_png = _fit_and_score(codec=False)
  codec_jpeg, codec_png = _fit_and_score(codec=True)
  # Measured: +1.7 dB through JPEG q50 (27.6 -> 29.3), for 2.6 dB of the lossless round trip.
  assert codec_jpeg > plain_jpeg + 0.8
  assert plain_png > codec_png  # it learned the codec, not just a better fit


def test_codec_draws_follow_the_step_in_graph_and_eager_mode(hr):
  # Drawn from (seed, step): graph and eager agree, and a resumed run, whose step comes back with
  # Adam's state, draws what the uninterrupted one would have.
  logs = []
  for eager in (False, True):
    model = tiny_model(seed=2, **CODEC, codec_prob=0.5)
    model.compile(optimizer=steps.Adam(3e-3), run_eagerly=eager)  # the trainer's
    model.optimizer.build(model.trainable_variables)
    logs.append([model.train_on_batch(hr, return_dict=True)["rec_loss"] for _ in range(3)])
  np.testing.assert_allclose(logs[0], logs[1], rtol=1e-4)
  model = tiny_model(seed=2, **CODEC, codec_prob=0.5)
  model.compile(optimizer=keras.optimizers.Adam(3e-3))
  model.optimizer.build(model.trainable_variables)
  out = model(hr, training=True)["sr"]
  np.testing.assert_array_equal(out, model(hr, training=True)["sr"])  # the same step: same draw
  model.optimizer.iterations.assign_add(1)
  assert np.abs(out - model(hr, training=True)["sr"]).max() > 0  # the next step: a new one
