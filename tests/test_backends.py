"""load_backend: every kind of model path gives a backend computing what the Keras model does."""

import json
import shutil
import types

import numpy as np
import pytest

from fgrn_tf import config, workdir
from fgrn_tf.runtime import backends
from fgrn_tf.workdir import ModelNotFoundError

pytestmark = pytest.mark.slow  # the test run's export of every format (conftest)


@pytest.fixture(scope="module")
def exported(every_format_export):
  e = every_format_export
  model = workdir.load_model(e.wd)
  return types.SimpleNamespace(wd=e.wd, out=e.out, model=model,
                               keras=backends.KerasBackend(model),
                               tflite=e.out / "tflite" / "float32")


def hr_batch(seed=0, n=1, h=12, w=16):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def assert_matches_keras(backend, keras, halves=("downscale", "upscale")):
  hr = hr_batch()
  lr_k = keras.downscale(hr)
  if "downscale" in halves:
    assert np.abs(backend.downscale(hr).astype(int) - lr_k).max() <= 1
  if "upscale" in halves:
    assert np.abs(backend.upscale(lr_k).astype(int) - keras.upscale(lr_k)).max() <= 1


def test_load_backend_accepts_every_kind_of_model_path(exported, tmp_path):
  e = exported
  keras_file = tmp_path / "m.keras"
  e.model.save(keras_file)
  down, up = e.tflite / "downscaler.tflite", e.tflite / "upscaler.tflite"
  cases = [
      (e.wd, backends.KerasBackend),
      (keras_file, backends.KerasBackend),
      (e.out, backends.SavedModelBackend),  # export folder: the SavedModel by default
      (e.out / "fgrn_x2" / "1", backends.SavedModelBackend),
      (e.out / "fgrn_x2", backends.SavedModelBackend),  # TF Serving base path: newest version
      (e.tflite, backends.TFLiteBackend),  # a folder holding the pair
      ((up, down), backends.TFLiteBackend),  # a pair, in any order
      (f"{down},{up}", backends.TFLiteBackend),
  ]
  for path, kind in cases:
    backend = backends.load_backend(path)
    assert type(backend) is kind, path
    assert backend.scale == 2
    assert backend.model_config == config.smoke().model, path  # tiling reads its margins
    assert_matches_keras(backend, e.keras)
  backend = backends.load_backend(e.out, artifact="tflite_float32", num_threads=1)
  assert isinstance(backend, backends.TFLiteBackend)
  assert_matches_keras(backend, e.keras)


def test_every_backend_gives_the_same_uint8_batch_as_one_image_at_a_time(exported):
  # Keras, the SavedModel and the .tflite pair: uint8 out at the scaled shape, and a batch of 2
  # gives exactly what each image gives alone (nothing leaks between images in one call).
  hr = hr_batch(seed=5, n=2, h=12, w=16)
  outputs = {}
  for backend in (exported.keras, backends.load_backend(exported.out),
                  backends.load_backend(exported.tflite)):
    lr = backend.downscale(hr)
    sr = backend.upscale(lr)
    assert (lr.dtype, lr.shape, sr.dtype, sr.shape) == (np.uint8, (2, 6, 8, 3),
                                                         np.uint8, (2, 12, 16, 3)), backend.name
    for i in range(2):
      np.testing.assert_array_equal(backend.downscale(hr[i:i + 1]), lr[i:i + 1])
      np.testing.assert_array_equal(backend.upscale(lr[i:i + 1]), sr[i:i + 1])
    outputs[backend.name] = lr
  for name, lr in outputs.items():
    assert np.abs(lr.astype(int) - outputs["keras"]).max() <= 1, name
  with pytest.raises(TypeError):  # options are keyword-only: no artifact taken for num_threads
    backends.load_backend(exported.out, "tflite_float32")


def test_single_tflite_file_runs_its_half_and_names_what_to_pass_for_the_other(exported):
  # The message reaches command-line users too ("model X: ..."): it names files and folders to
  # give, not a Python function to call.
  up_file, down_file = exported.tflite / "upscaler.tflite", exported.tflite / "downscaler.tflite"
  up = backends.load_backend(up_file)
  assert up.scale == 2
  assert_matches_keras(up, exported.keras, halves=("upscale",))
  with pytest.raises(backends.MissingHalfError) as info:
    up.downscale(hr_batch())
  assert str(info.value) == (
      f"{up_file} holds only the upscale half of FGRN, not the downscaler: to downscale, give "
      f"both files ({down_file},{up_file}), the folder holding them, or the export folder")
  down = backends.load_backend(down_file)
  assert_matches_keras(down, exported.keras, halves=("downscale",))
  with pytest.raises(backends.MissingHalfError, match="only the downscale half.*not the upscaler"
                     ) as info:
    down.upscale(hr_batch())
  assert "load_backend" not in str(info.value)
  assert backends.load_backend(f"{down_file},{up_file}").upscale(hr_batch()).shape[1] == 24


def test_tflite_backend_follows_changing_input_sizes(exported):
  backend = backends.load_backend(exported.tflite, num_threads=2)
  for n, h, w in [(1, 8, 8), (2, 20, 12), (1, 8, 8), (3, 4, 6)]:
    hr = hr_batch(h + w, n, h, w)
    lr = backend.downscale(hr)
    assert lr.shape == (n, h // 2, w // 2, 3)
    np.testing.assert_allclose(lr, exported.keras.downscale(hr), atol=1)
    assert backend.upscale(lr).shape == (n, h, w, 3)


def test_saved_model_without_export_info_still_knows_its_scale(exported, tmp_path):
  copy = tmp_path / "sm"
  shutil.copytree(exported.out / "fgrn_x2" / "1", copy)
  shutil.rmtree(copy / "assets.extra")
  backend = backends.load_backend(copy)
  assert backend.scale == 2 and backend.model_config is None
  assert_matches_keras(backend, exported.keras)


def test_bad_inputs_are_refused_by_every_backend(exported):
  for backend in (exported.keras, backends.load_backend(exported.out),
                  backends.load_backend(exported.tflite)):
    with pytest.raises(ValueError, match="multiples of the scale 2; received 9x8"):
      backend.downscale(np.zeros((1, 9, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="must be uint8.*float64"):
      backend.upscale(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="RGB batch"):
      backend.upscale(np.zeros((1, 4, 4, 4), np.uint8))


def test_paths_that_hold_no_model_fail_with_one_clear_line(exported, tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "junk.tflite").write_bytes(b"\0" * 64)
  (tmp_path / "notes.txt").write_text("x")
  cases = [(tmp_path / "nope", ModelNotFoundError, "no such file or folder"),
           (tmp_path / "empty", ModelNotFoundError, "holds no model"),
           (tmp_path / "notes.txt", ModelNotFoundError, "not a model file"),
           (tmp_path / "junk.tflite", ValueError, "junk.tflite: not a readable .tflite model"),
           ((exported.tflite / "upscaler.tflite",) * 2, ValueError, "both hold the upscale")]
  for path, error, message in cases:
    with pytest.raises(error, match=message) as info:
      backends.load_backend(path)
    assert "\n" not in str(info.value)
  # An export made with --formats savedmodel,tflite_float32: the test run's, less the others.
  two = tmp_path / "two"
  shutil.copytree(exported.out, two)
  manifest = json.loads((two / "manifest.json").read_text())
  manifest["artifacts"] = {k: manifest["artifacts"][k] for k in ("savedmodel", "tflite_float32")}
  (two / "manifest.json").write_text(json.dumps(manifest))
  for folder in (two / "tflite").iterdir():
    if folder.name != "float32":
      shutil.rmtree(folder)
  with pytest.raises(ValueError, match="no tflite_int8 artifact.*holds savedmodel, tflite_float32"):
    backends.load_backend(two, artifact="tflite_int8")
