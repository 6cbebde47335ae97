"""Evaluation through real codecs (`--codec`): the LR really goes through the encoder, rows per
method x dataset x codec with the LR's bytes, reproducible, and bad specs refused first."""

import json
import os
import pathlib
import sys

import forked_tools
import pytest
from helpers import photo, write_model_dir

from fgrn_tf.data.codecs import CodecError
from fgrn_tf.data.images import write_image
from fgrn_tf.evaluate import evaluator

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("codec_set")
  write_image(d / "a.png", photo(48, 40, seed=0))
  write_image(d / "b.png", photo(36, 44, seed=1))
  return d


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return write_model_dir(tmp_path_factory.mktemp("codec_model"))


@pytest.fixture(scope="module")
def results(images_dir, model_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("codec_out") / "r"
  return evaluator.evaluate(["fgrn", "bicubic"], 2, [str(images_dir)], out, model=model_dir,
                           niqe_params="none", progress=False,
                           codecs="png,jpeg:90,jpeg:30,webp:80")


def test_a_row_per_dataset_method_and_codec_with_the_lr_bytes(results, images_dir):
  rows = results["rows"]
  assert [(r["method"], r["codec"]) for r in rows] == [
      (m, c) for c in ("png", "jpeg:90", "jpeg:30", "webp:80") for m in ("fgrn", "bicubic")]
  for r in rows:
    assert r["dataset"] == images_dir.name and r["images"] == 2
    assert r["lr_bytes"] > 0 and r["bpp"] == pytest.approx(8 * r["lr_bytes"] / (48 * 40 + 36 * 44))
    assert "lr_psnr" in r and "lr_psnr_rgb" in r  # the LR's own likeness, whatever the codec


def test_the_codec_changes_the_lr_bytes_and_the_reconstruction(results):
  by = {(r["method"], r["codec"]): r for r in results["rows"]}
  for method in ("fgrn", "bicubic"):
    png, q90, q30 = (by[(method, c)] for c in ("png", "jpeg:90", "jpeg:30"))
    assert q30["lr_bytes"] < q90["lr_bytes"] < png["lr_bytes"]
    assert q30["psnr"] < q90["psnr"] and q90["psnr"] != png["psnr"]
  entry = next(iter(results["datasets"].values()))
  assert entry["codecs"]["jpeg:90"]["fgrn"]["lr_codec_psnr"] < 60  # the decoded LR differs


def test_codec_rows_are_reproducible(results, images_dir, model_dir, tmp_path):
  again = evaluator.evaluate(["fgrn", "bicubic"], 2, [str(images_dir)], tmp_path / "r",
                            model=model_dir, niqe_params="none", progress=False,
                            codecs="png,jpeg:90,jpeg:30,webp:80")
  assert json.dumps(again["rows"]) == json.dumps(results["rows"])


@pytest.mark.parametrize("spec, word", [("jpeg:0", "1..100"), ("jpeg:101", "1..100"),
                                        ("gif:5", "unknown codec")])
def test_bad_codec_specs_are_refused_before_anything_runs(images_dir, tmp_path, spec, word):
  with pytest.raises(CodecError, match=word):
    evaluator.evaluate(["bicubic"], 2, [str(images_dir)], tmp_path / "r", niqe_params="none",
                      progress=False, codecs=spec)
  assert not (tmp_path / "r").exists()
  proc = forked_tools.run([sys.executable, str(ROOT / "eval_main.py"), "--method", "bicubic",
                           "--datasets", str(images_dir), "--output_dir", str(tmp_path / "o"),
                           "--codec", spec], timeout=300, cwd=ROOT,
                           env={**os.environ, "FGRN_NIQE_PARAMS": "none"})
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode != 0 and len(lines) == 1 and word in lines[0], proc.stderr[-2000:]
