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


def run_jax(code: str, *args, devices: int = 1, timeout: int = 600) -> str:
  """Runs `code` under KERAS_BACKEND=jax on `devices` host CPUs, with TensorFlow not importable
  (after a check that importing the model core did not try); returns its stdout."""
  env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
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
def steps():
  return json.loads(run_jax(STEPS, devices=2).splitlines()[-1])


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


TRAIN = """
    import sys
    from fgrn_tf import config
    from fgrn_tf.train import trainer
    preset, workdir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    exp = config.preset("smoke").replace(train={"steps": steps})
    if preset == "codec":
      exp = exp.replace(model={"codec_min_quality": 60, "codec_max_quality": 90,
                               "codec_prob": 0.5, "lr_weight": 0.1})
    print(trainer.train(exp, workdir).text(workdir))
"""


def _weights(path):
  import h5py

  found = {}
  with h5py.File(path, "r") as f:
    f.visititems(lambda name, item: found.__setitem__(name, item[()])
                 if isinstance(item, h5py.Dataset) else None)
  return found


ROUNDTRIP = """
    import sys
    import numpy as np
    from fgrn_tf import workdir
    model = workdir.load_model(sys.argv[1])
    hr = np.load(sys.argv[2])
    lr = np.asarray(model.downscale(hr))
    np.savez(sys.argv[3], lr=lr, sr=np.asarray(model.upscale(lr)))
"""


def _same_images_on_tensorflow(run, tmp_path):
  """The weights a JAX run trained give the same images on TensorFlow (at most 1 level)."""
  from fgrn_tf import workdir

  hr = photo(48, 64, seed=4)[None]
  np.save(tmp_path / "hr.npy", hr)
  run_jax(ROUNDTRIP, run, tmp_path / "hr.npy", tmp_path / "jax.npz")
  on_jax = np.load(tmp_path / "jax.npz")
  model = workdir.load_model(run)
  lr = np.asarray(model.downscale(hr))
  assert np.abs(lr.astype(int) - on_jax["lr"]).max() <= 1
  sr = np.asarray(model.upscale(on_jax["lr"]))
  assert np.abs(sr.astype(int) - on_jax["sr"]).max() <= 1


@pytest.mark.parametrize("preset", ["plain", "codec"])
def test_a_resumed_jax_run_equals_an_uninterrupted_one_and_runs_on_tensorflow(tmp_path, preset):
  whole, parts = tmp_path / "whole", tmp_path / "parts"
  run_jax(TRAIN, preset, whole, 6)
  run_jax(TRAIN, preset, parts, 3)
  assert "resuming at step 3" in run_jax(TRAIN, preset, parts, 6)
  a, b = _weights(whole / "backup/latest.weights.h5"), _weights(parts / "backup/latest.weights.h5")
  assert a.keys() == b.keys() and len(a) > 10
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=name)
  state = json.loads((parts / "train_state.json").read_text())
  assert state["backend"] == "jax" and state["step"] == 6
  assert len((parts / "history.jsonl").read_text().splitlines()) == 2
  if preset == "plain":
    _same_images_on_tensorflow(whole, tmp_path)
