"""Tests for `python -m fgrn_tf {downscale,upscale,roundtrip}`: outputs, messages, exit codes."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import tiny_model

from fgrn_tf import __main__ as cli
from fgrn_tf import config, inference, workdir
from fgrn_tf.data import images


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("model")
  workdir.write_experiment(d, config.smoke())
  tiny_model(seed=2).save_weights(d / workdir.BEST_WEIGHTS)
  return d


@pytest.fixture()
def inputs(tmp_path):
  """Odd sizes, gray, RGBA and 16-bit, in a folder."""
  rng = np.random.default_rng(0)
  d = tmp_path / "in"
  images.write_image(d / "odd.png", rng.integers(0, 256, (23, 31, 3), dtype=np.uint8))
  images.write_image(d / "gray.png", rng.integers(0, 256, (17, 20), dtype=np.uint8))
  images.write_image(d / "rgba.png", rng.integers(0, 256, (19, 16, 4), dtype=np.uint8))
  images.write_image(d / "deep.png", rng.integers(0, 65536, (16, 25, 3), dtype=np.uint16))
  return d


ROOT = pathlib.Path(cli.__file__).resolve().parents[1]
NAMES = ["deep.png", "gray.png", "odd.png", "rgba.png"]


def run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def test_each_command_keeps_names_sizes_and_kinds(model_dir, inputs, tmp_path, capsys):
  code, _, err = run(capsys, "downscale", inputs, "--model", model_dir, "-o", tmp_path / "lr")
  assert code == 0, err
  assert "downscale: 4 done, 0 failed" in err and "images/s" in err
  assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == NAMES
  assert images.decode(tmp_path / "lr" / "odd.png").rgb.shape == (12, 16, 3)

  code, _, err = run(capsys, "upscale", tmp_path / "lr" / "*.png", "--model", model_dir,
                     "-o", tmp_path / "hr")
  assert code == 0, err
  code, out, err = run(capsys, "roundtrip", inputs, "--model", model_dir, "--scale", 2,
                       "-o", tmp_path / "rt", "--lr-dir", tmp_path / "rtlr")
  assert code == 0, err
  for name in NAMES:
    original = images.decode(inputs / name)
    for folder in ("hr", "rt"):
      out_image = images.decode(tmp_path / folder / name)
      assert out_image.rgb.shape == original.rgb.shape
      assert (out_image.gray, out_image.bit_depth, out_image.alpha is None) == \
          (original.gray, original.bit_depth, original.alpha is None)
    assert re.search(rf"{re.escape(str(inputs / name))}  PSNR \d+\.\d\d dB  SSIM -?[\d.]+", out)
  assert re.search(r"^mean of 4  PSNR \d+\.\d\d dB  SSIM -?[\d.]+$", out, re.M)
  assert (tmp_path / "rtlr" / "odd.png").read_bytes() == (tmp_path / "lr" / "odd.png").read_bytes()


def test_bad_files_get_one_line_each_and_a_nonzero_exit(model_dir, inputs, tmp_path, capsys):
  (inputs / "text.png").write_text("not an image")
  data = images.encode("x.png", np.zeros((30, 30, 3), np.uint8))
  (inputs / "truncated.png").write_bytes(data[:len(data) // 2])
  code, _, err = run(capsys, "downscale", inputs / "odd.png", inputs / "missing.png",
                     inputs / "text.png", inputs / "truncated.png", "--model", model_dir,
                     "-o", tmp_path / "out")
  assert code == 1
  errors = [line for line in err.splitlines() if line.startswith("error:")]
  assert len(errors) == 3
  for name in ("missing.png", "text.png", "truncated.png"):
    assert sum(name in line for line in errors) == 1
  assert "Traceback" not in err
  assert "downscale: 1 done, 3 failed" in err
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["odd.png"]


def test_existing_output_needs_overwrite(model_dir, inputs, tmp_path, capsys):
  args = ["downscale", inputs / "odd.png", "--model", model_dir, "-o", tmp_path / "out"]
  assert run(capsys, *args)[0] == 0
  before = (tmp_path / "out" / "odd.png").stat().st_mtime_ns
  code, _, err = run(capsys, *args)
  assert code == 1 and "exists (pass --overwrite to replace it)" in err
  assert (tmp_path / "out" / "odd.png").stat().st_mtime_ns == before
  assert run(capsys, *args, "--overwrite")[0] == 0


def test_unwritable_output_folder_fails_per_file(model_dir, inputs, tmp_path, capsys):
  # As root a chmod-ed folder still takes writes; nobody can create a folder below a file.
  (tmp_path / "file").write_text("x")
  code, _, err = run(capsys, "downscale", inputs / "odd.png", "--model", model_dir,
                     "-o", tmp_path / "file" / "out")
  assert code == 1
  assert "odd.png" in err and "cannot create output folder" in err


def test_model_of_another_scale_is_refused(model_dir, inputs, tmp_path, capsys):
  code, _, err = run(capsys, "roundtrip", inputs, "--model", model_dir, "--scale", 4)
  assert code == 2
  assert err.strip().splitlines() == [f"error: model {model_dir} is x2 but --scale 4 was asked for"]


def test_missing_model_says_how_to_get_one(inputs, tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(inference, "default_model_path", lambda scale: tmp_path / "none")
  code, _, err = run(capsys, "downscale", inputs, "-o", tmp_path / "out")
  assert code == 2 and len(err.strip().splitlines()) == 1
  assert "train_main.py" in err and "--model" in err
  code, _, err = run(capsys, "downscale", inputs, "--model", tmp_path / "nothing", "-o",
                     tmp_path / "out")
  assert code == 2 and len(err.strip().splitlines()) == 1 and "nothing" in err


def test_tile_smaller_than_the_receptive_field_is_refused(model_dir, inputs, tmp_path, capsys):
  code, _, err = run(capsys, "upscale", inputs, "--model", model_dir, "-o", tmp_path / "o",
                     "--tile", 16)
  assert code == 2 and "--tile 16 is too small" in err


@pytest.mark.slow  # a fresh interpreter importing TensorFlow: ~10 s idle, minutes when loaded
def test_module_entry_point_exits_nonzero_without_traceback(model_dir, inputs, tmp_path):
  (inputs / "text.png").write_text("not an image")
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
  proc = subprocess.run([sys.executable, "-m", "fgrn_tf", "downscale", str(inputs / "text.png"),
                         str(inputs / "odd.png"), "--model", str(model_dir), "-o",
                         str(tmp_path / "out")], capture_output=True, text=True, env=env,
                        timeout=300)
  assert proc.returncode == 1, proc.stderr
  assert "Traceback" not in proc.stderr
  assert f"error: {inputs / 'text.png'}: not a readable image" in proc.stderr
  assert (tmp_path / "out" / "odd.png").is_file()
