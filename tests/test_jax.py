"""FGRN on the JAX backend: the model core without TensorFlow, training (one device, two host
devices under DataParallel, mixed_bfloat16), exact resume, and one set of weights for both
backends. JAX runs in subprocesses (this process's Keras is on TensorFlow)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT
from helpers import photo

pytest.importorskip("jax")


# As on a JAX machine without TensorFlow: `import tensorflow` fails (Keras then leaves TF alone).
NO_TENSORFLOW = "import sys\nsys.modules['tensorflow'] = None\n"


def run_jax(env: dict, code: str, *args, devices: int = 1, timeout: int = 600) -> str:
  """Runs `code` in `env` (the `jax_env` fixture) on `devices` host CPUs, with TensorFlow not
  importable (after a check that importing the model core did not try); returns its stdout."""
  env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
         "XLA_FLAGS": f"{env['XLA_FLAGS']} --xla_force_host_platform_device_count={devices}"}
  code = NO_TENSORFLOW + textwrap.dedent(code)
  result = subprocess.run([sys.executable, "-c", code, *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-4000:]
  return result.stdout


STEPS = """
    import json, sys
    del sys.modules["tensorflow"]
    from fgrn_tf.models.fgrn import FGRN
    core = "tensorflow" in sys.modules
    sys.modules["tensorflow"] = None
    import keras
    import numpy as np
    from helpers import tiny_model, wave_images
    model = tiny_model(seed=1)
    x = keras.ops.convert_to_tensor(wave_images(2, 16, 16, seed=3))
    y, logdet = model.flow.forward(x)
    back, inverse_logdet = model.flow.inverse(y)
    out = {"tf_after_import": core,
           "inverse_error": float(np.abs(np.asarray(back) - np.asarray(x)).max()),
           "logdet_sum": float(np.abs(np.asarray(logdet + inverse_logdet)).max()),
           "moved": float(np.abs(np.asarray(y) - np.asarray(x)).max())}

    def losses(precision, parallel):
      if parallel:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
      keras.utils.set_random_seed(0)
      model = FGRN(tiny_model().model_config, precision=precision)
      model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
      hr = wave_images(4, 32, 32, seed=1)
      seen = [float(model.train_on_batch(hr, return_dict=True)["loss"]) for _ in range(12)]
      keras.distribution.set_distribution(None)
      return seen

    out["float32"] = losses("float32", False)
    out["mixed_bfloat16"] = losses("mixed_bfloat16", False)
    out["parallel"] = losses("float32", True)
    out["devices"] = len(__import__("jax").devices())
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def steps(jax_env):
  return json.loads(run_jax(jax_env, STEPS, devices=2).splitlines()[-1])


def test_the_model_core_imports_no_tensorflow_on_jax(steps):
  assert not steps["tf_after_import"]


def test_the_flow_inverts_on_jax(steps):
  assert steps["moved"] > 1e-3  # the couplings are not the identity
  assert steps["inverse_error"] < 1e-5
  assert steps["logdet_sum"] < 1e-4


@pytest.mark.parametrize("run", ["float32", "mixed_bfloat16", "parallel"])
def test_a_jax_training_step_lowers_the_loss_on_a_fixed_batch(steps, run):
  seen = steps[run]
  assert np.isfinite(seen).all()
  assert np.mean(seen[-3:]) < 0.8 * np.mean(seen[:3]), seen
  if run == "parallel":
    assert steps["devices"] == 2


# One process trains the whole run and the interrupted one (its second part resumes from the
# backup on disk, as a rerun would; the process only saves recompiling the step), then writes
# the images the trained model makes on JAX.
TRAIN = """
    import sys
    import numpy as np
    from fgrn_tf import config, workdir
    from fgrn_tf.train import trainer
    preset, base, hr = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
    exp = config.preset("smoke").replace(train={"steps": 6})
    if preset == "codec":
      exp = exp.replace(objective={"codec_min_quality": 60, "codec_max_quality": 90,
                                   "codec_prob": 0.5, "lr_weight": 0.1})
    for name, steps in (("whole", 6), ("parts", 3), ("parts", 6)):
      print(trainer.train(exp.replace(train={"steps": steps}), f"{base}/{name}").text(name))
    model = workdir.load_model(f"{base}/whole")
    lr = np.asarray(model.downscale(hr))
    np.savez(f"{base}/jax.npz", lr=lr, sr=np.asarray(model.upscale(lr)))
"""


def _weights(path):
  import h5py

  found = {}
  with h5py.File(path, "r") as f:
    f.visititems(lambda name, item: found.__setitem__(name, item[()])
                 if isinstance(item, h5py.Dataset) else None)
  return found


def _same_images_on_tensorflow(run, hr, on_jax, tmp_path):
  """The weights a JAX run trained give the same images on TensorFlow, in Keras and exported
  (SavedModel, TFLite): at most 1 level apart."""
  from fgrn_tf import workdir
  from fgrn_tf.export import exporter
  from fgrn_tf.runtime import backends

  model = workdir.load_model(run)
  exporter.export(model, tmp_path / "export", [("hr.png", hr[0])],
                  formats=["savedmodel", "tflite_float32"], log=lambda _: None)
  for path, artifact in ((run, None), (tmp_path / "export", "savedmodel"),
                         (tmp_path / "export", "tflite_float32")):
    backend = backends.load_backend(path, artifact=artifact)
    lr = backend.downscale(hr)
    assert np.abs(lr.astype(int) - on_jax["lr"]).max() <= 1, backend.name
    sr = backend.upscale(on_jax["lr"])
    assert np.abs(sr.astype(int) - on_jax["sr"]).max() <= 1, backend.name


@pytest.mark.parametrize("preset", ["plain", "codec"])
def test_a_resumed_jax_run_equals_an_uninterrupted_one_and_runs_on_tensorflow(tmp_path, preset,
                                                                            jax_env):
  hr = photo(48, 64, seed=4)[None]
  np.save(tmp_path / "hr.npy", hr)
  out = run_jax(jax_env, TRAIN, preset, tmp_path, tmp_path / "hr.npy")
  assert "resuming at step 3" in out
  whole, parts = tmp_path / "whole", tmp_path / "parts"
  a, b = _weights(whole / "backup/latest.weights.h5"), _weights(parts / "backup/latest.weights.h5")
  assert a.keys() == b.keys() and len(a) > 10
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=name)
  state = json.loads((parts / "train_state.json").read_text())
  assert state["backend"] == "jax" and state["step"] == 6
  history = [json.loads(line) for line in (parts / "history.jsonl").read_text().splitlines()]
  assert [h["step"] for h in history] == [3, 3, 6]  # an epoch, the longer run from 3, an epoch
  assert history[1]["changed"] == ["steps: 3 -> 6"]
  if preset == "plain":
    _same_images_on_tensorflow(whole, hr, np.load(tmp_path / "jax.npz"), tmp_path)


SHIPPED = """
    import sys
    import numpy as np
    from fgrn_tf import workdir
    from fgrn_tf.runtime import shipped
    hr, out = np.load(sys.argv[1]), {}
    for name in ("fgrn_x2", "fgrn_x4"):
      model = workdir.load_model(shipped.model_dir(name))
      out[name + "_lr"] = lr = np.asarray(model.downscale(hr))
      out[name + "_sr"] = np.asarray(model.upscale(lr))
    np.savez(sys.argv[2], **out)
"""


def test_the_bundled_weights_give_the_same_round_trip_on_both_backends(tmp_path, jax_env):
  # bench/backend_parity.py measures the same on whole datasets (Set5 in the closing note).
  from fgrn_tf import workdir
  from fgrn_tf.data import defaults, images
  from fgrn_tf.metrics.psnr_ssim import psnr_y
  from fgrn_tf.runtime import shipped

  hr = images.read_rgb8(defaults.default_image_files()[0])[None, :96, :128]
  np.save(tmp_path / "hr.npy", hr)
  run_jax(jax_env, SHIPPED, tmp_path / "hr.npy", tmp_path / "jax.npz")
  on_jax = np.load(tmp_path / "jax.npz")
  for name in ("fgrn_x2", "fgrn_x4"):
    model = workdir.load_model(shipped.model_dir(name))
    lr = np.asarray(model.downscale(hr))
    assert np.abs(lr.astype(int) - on_jax[name + "_lr"]).max() <= 1, name
    sr = np.asarray(model.upscale(lr))
    psnr_tf, psnr_jax = (psnr_y(hr[0], s[0], model.scale) for s in (sr, on_jax[name + "_sr"]))
    assert psnr_tf > 30 and abs(psnr_tf - psnr_jax) < 0.01, (name, psnr_tf, psnr_jax)
