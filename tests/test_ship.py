"""Shipping a run to models/: half-precision weights, float16 TFLite halves, the size limit."""

import h5py
import numpy as np
import pytest
from helpers import tiny_model, wave_images

from export import export_lib, ship_lib
from fgrn_tf import backends, config, workdir

pytestmark = pytest.mark.slow  # two TFLite conversions of a tiny model, ~30 s


def make_run(path):
  model = tiny_model()
  workdir.write_experiment(path, config.smoke())
  model.save_weights(path / workdir.BEST_WEIGHTS)
  (path / "train_state.json").write_text('{"step": 6}')
  return model


def check_images():
  return [(f"w{i}", (255 * im).astype(np.uint8)) for i, im in enumerate(wave_images(2, 32, 40))]


def float_dtypes(path):
  with h5py.File(path, "r") as f:
    found = set()
    f.visititems(lambda _, o: found.add(o.dtype.name) if isinstance(o, h5py.Dataset)
                 and o.dtype.kind == "f" else None)
  return found


def test_shipped_model_loads_like_a_workdir_and_matches_the_run(tmp_path):
  run, dest = tmp_path / "run", tmp_path / "models" / "fgrn_x2"
  make_run(run)
  lines = []
  ship_lib.ship(run, dest, check_images(), log=lines.append)

  assert float_dtypes(dest / workdir.BEST_WEIGHTS) == {"float16"}
  assert float_dtypes(run / workdir.BEST_WEIGHTS) == {"float32"}
  assert (dest / "train_state.json").read_text() == '{"step": 6}'
  assert any(line.startswith("half-precision weights") for line in lines)
  hr = check_images()[0][1][None]
  full, shipped = backends.load_backend(run), backends.load_backend(dest)
  assert isinstance(shipped, backends.KerasBackend)
  lr_full, lr_shipped = full.downscale(hr), shipped.downscale(hr)
  assert np.abs(lr_full.astype(int) - lr_shipped.astype(int)).max() <= 2
  lite = backends.load_backend(dest / ship_lib.EXPORT_SUBDIR, artifact="tflite_float16")
  assert np.abs(lite.downscale(hr).astype(int) - lr_shipped.astype(int)).max() <= 2
  assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_over_the_size_limit_keeps_the_model_already_shipped(tmp_path):
  run, dest = tmp_path / "run", tmp_path / "models" / "fgrn_x2"
  make_run(run)
  dest.mkdir(parents=True)
  (dest / "config.json").write_text("{}")
  with pytest.raises(export_lib.ExportError, match="over the 0 MB limit"):
    ship_lib.ship(run, dest, check_images(), log=lambda _: None, size_limit=1000)
  assert [p.name for p in dest.parent.iterdir()] == ["fgrn_x2"]
  assert (dest / "config.json").read_text() == "{}"


def test_export_without_a_workdir_exports_the_shipped_model(tmp_path):
  import json
  import os
  import subprocess
  import sys

  from fgrn_tf.inference import default_model_path

  shipped = default_model_path(2)
  if not shipped.is_dir():
    pytest.skip(f"no shipped model at {shipped}")
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "export/export_main.py", "--output_dir", str(out), "--formats",
       "tflite_float16", "--check_images", "1", "--check_crop", "64"],
      cwd=shipped.parents[1], env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["source"]["path"] == str(shipped.resolve())
  assert manifest["scale"] == 2
