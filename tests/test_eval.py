"""eval_main.py / evaluator: the published bicubic rows, FGRN through its real inverse, the report
files, and bad input."""

import json
import math
import os
import pathlib
import re
import shutil
import sys

import forked_tools
import numpy as np
import pytest
from helpers import randomize_zero_convs

from fgrn_tf import workdir
from fgrn_tf.cli import entry
from fgrn_tf.config import preset
from fgrn_tf.data.images import read_rgb8, write_image
from fgrn_tf.errors import FGRNError, UsageError
from fgrn_tf.evaluate import evaluator, inputs
from fgrn_tf.metrics.psnr_ssim import mod_crop, psnr_y
from fgrn_tf.models.fgrn import FGRN
from fgrn_tf.runtime import shipped

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run_cli(*args, env=None):
  return forked_tools.run([sys.executable, str(ROOT / "eval_main.py"), *args], cwd=ROOT,
                          timeout=300, env={**os.environ, **(env or {})})


def _strict_json(path):
  def refuse(name):
    raise ValueError(f"non-standard JSON constant {name}")
  return json.loads(pathlib.Path(path).read_text(), parse_constant=refuse)


def _photo(h, w, seed):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([np.sin(xx / (5 + c) + c) * np.cos(yy / (7 + c)) for c in range(3)], -1)
  return np.clip(128 + 80 * base + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
  """Three evaluable images (one gray, one not a multiple of the scale) and one too small."""
  d = tmp_path_factory.mktemp("tiny_set")
  write_image(d / "a.png", _photo(40, 36, 0))
  write_image(d / "b_odd.png", _photo(35, 41, 1))
  write_image(d / "c_gray.png", _photo(34, 30, 2)[:, :, 1])
  write_image(d / "d_tiny.png", _photo(12, 40, 3))
  return d


@pytest.fixture(scope="module")
def smoke_workdir(tmp_path_factory):
  """An untrained smoke model whose flow F is not the identity (its zero-initialised convs
  randomised), so that upscaling must run the real F^-1."""
  d = tmp_path_factory.mktemp("smoke_x2")
  experiment = preset("smoke")
  workdir.write_experiment(d, experiment)
  model = FGRN(experiment.model)
  randomize_zero_convs(model.flow)
  model.save_weights(d / workdir.BEST_WEIGHTS)
  return d


def test_cli_bicubic_reproduces_published_set5_x2(data_root, niqe_params_path, tmp_path):
  # Both found through the environment, as a user without the flags would give them.
  proc = _run_cli("--method", "bicubic", "--scale", "2", "--datasets", "Set5",
                  "--output_dir", str(tmp_path), "--noprogress",
                  env={"FGRN_DATA_ROOT": str(data_root),
                       "FGRN_NIQE_PARAMS": str(niqe_params_path)})
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = _strict_json(tmp_path / "results.json")
  m = results["datasets"]["Set5"]["methods"]["bicubic"]
  assert m["psnr"] == pytest.approx(33.66, abs=0.05)
  assert m["ssim"] == pytest.approx(0.9299, abs=0.001)
  assert len(m["per_image"]) == 5 and m["lr_psnr"] == "inf"
  assert m["niqe_defined"] + m["niqe_undefined"] == 5
  assert 0 < m["piqe"] < 100
  md = (tmp_path / "results.md").read_text()
  assert "| Method | Set5 |" in md and "33.6" in md
  assert (tmp_path / results["datasets"]["Set5"]["figure"]).stat().st_size > 10_000


def test_bicubic_reproduces_published_set5_x4(data_root, niqe_params_path, tmp_path):
  results = evaluator.evaluate(["bicubic"], 4, ["Set5"], tmp_path, data_root=data_root,
                              niqe_params=niqe_params_path, progress=False)
  m = results["datasets"]["Set5"]["methods"]["bicubic"]
  assert m["psnr"] == pytest.approx(28.42, abs=0.05)
  assert m["ssim"] == pytest.approx(0.8104, abs=0.001)
  assert m["niqe"] is None and m["niqe_undefined"] == 5  # every x4 LR is a single block
  assert all(r["niqe"] is None and "1 block" in r["niqe_undefined"] for r in m["per_image"])


def test_fgrn_and_bicubic_on_a_folder(tiny_set, smoke_workdir, tmp_path):
  results = evaluator.evaluate("fgrn,bicubic", 2, [str(tiny_set)], tmp_path,
                              model=smoke_workdir, progress=False)
  entry = results["datasets"][tiny_set.name]
  assert entry["files"] == 4 and entry["evaluated"] == 3
  assert [s["name"] for s in entry["skipped"]] == ["d_tiny"]
  assert "too small" in entry["skipped"][0]["reason"]
  fgrn, bic = entry["methods"]["fgrn"], entry["methods"]["bicubic"]
  assert [r["name"] for r in fgrn["per_image"]] == ["a", "b_odd", "c_gray"]
  assert fgrn["per_image"][1]["size"] == [34, 40]  # mod-cropped
  assert math.isfinite(fgrn["lr_psnr"]) and bic["lr_psnr"] == math.inf
  saved = _strict_json(tmp_path / "results.json")
  assert saved["datasets"][tiny_set.name]["methods"]["bicubic"]["lr_psnr"] == "inf"
  md = (tmp_path / "results.md").read_text()
  assert "| FGRN |" in md and "| Bicubic |" in md and f"skipped {tiny_set.name}/d_tiny" in md
  assert (tmp_path / f"{tiny_set.name}_x2.png").is_file()


def test_fgrn_round_trip_goes_through_the_inverse_of_the_flow(tiny_set, smoke_workdir,
                                                              tmp_path):
  import tensorflow as tf

  from fgrn_tf.models.fgrn import snap_to_grid
  from fgrn_tf.models.quantize import from_uint8, quantize, to_uint8

  results = evaluator.evaluate(["fgrn"], 2, [str(tiny_set)], tmp_path, model=smoke_workdir,
                              progress=False, niqe_params="none")
  per_image = results["datasets"][tiny_set.name]["methods"]["fgrn"]["per_image"]
  model = workdir.load_model(smoke_workdir)
  for record in per_image:
    hr = mod_crop(read_rgb8(tiny_set / f"{record['name']}.png"), 2)[None]
    lr = model.downscale(hr)
    gd_lr = to_uint8(quantize(model.downscaler(from_uint8(hr))))
    assert psnr_y(lr[0].numpy(), gd_lr[0].numpy(), 0) < 35  # F moves the LR: not the identity
    sr = model.upscale(lr)[0].numpy()
    assert record["psnr"] == pytest.approx(psnr_y(hr[0], sr, 2), abs=0.01)
    # What eval would report if it ran F again instead of F^-1 before Gu.
    x, _ = model.flow.forward(from_uint8(lr))
    through_f = to_uint8(model.upscaler(snap_to_grid(x) if model.model_config.snap else x))
    assert record["psnr"] > psnr_y(hr[0], tf.squeeze(through_f, 0).numpy(), 2) + 3


@pytest.mark.slow
def test_savedmodel_gives_the_numbers_of_the_workdir(smoke_workdir, tmp_path):
  from fgrn_tf.export import saved_model

  images_dir = tmp_path / "one"
  write_image(images_dir / "a.png", _photo(48, 40, 5))
  saved_model.write(workdir.load_model(smoke_workdir), tmp_path / "sm")
  runs = [evaluator.evaluate(["fgrn"], 2, [str(images_dir)], tmp_path / str(i), model=m,
                            progress=False, niqe_params="none")
          for i, m in enumerate((smoke_workdir, tmp_path / "sm"))]
  a, b = (r["datasets"]["one"]["methods"]["fgrn"]["per_image"] for r in runs)
  for x, y in zip(a, b, strict=True):
    assert x["psnr"] == pytest.approx(y["psnr"], abs=0.01)  # equal up to rare rounding flips
    assert x["lr_psnr"] == pytest.approx(y["lr_psnr"], abs=0.01)


def test_gray_image_is_evaluated_as_y_of_rgb_expanded(tiny_set, tmp_path):
  results = evaluator.evaluate(["bicubic"], 2, [str(tiny_set)], tmp_path, progress=False,
                              niqe_params="none")
  gray = results["datasets"][tiny_set.name]["methods"]["bicubic"]["per_image"][2]
  assert gray["name"] == "c_gray" and "niqe" not in gray
  hr = np.repeat(_photo(34, 30, 2)[:, :, 1:2], 3, axis=2)
  method = evaluator.bicubic_method(2)
  assert gray["psnr"] == pytest.approx(psnr_y(hr, method.upscale(method.downscale(hr)), 2))


def test_model_of_another_scale_is_refused(tiny_set, smoke_workdir, tmp_path):
  with pytest.raises(UsageError, match=r"is x2 but --scale 4"):
    evaluator.evaluate(["fgrn"], 4, [str(tiny_set)], tmp_path, model=smoke_workdir,
                      progress=False)


def test_missing_model_names_what_was_looked_for(tiny_set, tmp_path, monkeypatch):
  with pytest.raises(FGRNError, match="no_such_model"):
    evaluator.evaluate(["fgrn"], 2, [str(tiny_set)], tmp_path, model=tmp_path / "no_such_model")
  monkeypatch.setattr(shipped, "default_model_path",
                      lambda scale: tmp_path / "shipped_models" / f"fgrn_x{scale}")
  with pytest.raises(UsageError, match=r"shipped_models/fgrn_x2.*--model"):
    evaluator.evaluate(["fgrn"], 2, [str(tiny_set)], tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_cli_missing_dataset_is_one_line_and_nonzero(tmp_path):
  proc = _run_cli("--method", "bicubic", "--datasets", "NoSuchSet", "--output_dir",
                  str(tmp_path / "out"), env={"FGRN_DATA_ROOT": str(tmp_path)})
  assert proc.returncode != 0
  lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
  assert "Traceback" not in proc.stderr
  assert "NoSuchSet" in lines[-1] and str(tmp_path) in lines[-1]
  assert not (tmp_path / "out").exists()


def test_named_dataset_without_a_data_root_says_how_to_give_one(tmp_path, monkeypatch):
  # No guessed location (a data folder beside the checkout): the flag or the variable only.
  monkeypatch.delenv("FGRN_DATA_ROOT", raising=False)
  monkeypatch.chdir(tmp_path)  # nor a folder "Set5" here
  with pytest.raises(evaluator.EvalError, match=r"'Set5'.*pass --data_root or set FGRN_DATA_ROOT"):
    inputs.resolve_datasets(["Set5"])


def test_without_niqe_parameters_the_evaluation_runs_and_says_why(tiny_set, tmp_path,
                                                                   monkeypatch):
  monkeypatch.delenv("FGRN_NIQE_PARAMS", raising=False)
  results = evaluator.evaluate(["bicubic"], 2, [str(tiny_set)], tmp_path, progress=False)
  assert results["protocol"]["niqe"] == "not computed"
  assert "niqe" not in results["datasets"][tiny_set.name]["methods"]["bicubic"]
  md = (tmp_path / "results.md").read_text()
  assert "NIQE not computed" in md and "--niqe_params or set FGRN_NIQE_PARAMS" in md


def test_unknown_method_is_refused(tiny_set, tmp_path):
  with pytest.raises(evaluator.EvalError, match="unknown method bilinear"):
    evaluator.evaluate("bilinear", 2, [str(tiny_set)], tmp_path)


# ---- where the results go ---------------------------------------------------------------------

def _snapshot(folder):
  """Every file under `folder` with its bytes: what a refused run must leave as it was."""
  folder = pathlib.Path(folder)
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file()}


def _one_error_line(proc):
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("eval_main.py: error:"), proc.stderr[-2000:]
  return last


@pytest.mark.parametrize("where, message", [
    ("the dataset", "inside the dataset"),
    ("a folder inside it", "inside the dataset"),
    ("another image folder", "holds images eval_main.py did not write"),
])
def test_output_dir_in_an_image_folder_is_refused_and_nothing_is_written(tiny_set, tmp_path,
                                                                         where, message):
  data, other = tmp_path / "data", tmp_path / "other"
  shutil.copytree(tiny_set, data)
  shutil.copytree(tiny_set, other)
  out = {"the dataset": data, "a folder inside it": data / "results",
         "another image folder": other}[where]
  before = _snapshot(tmp_path)
  with pytest.raises(evaluator.EvalError, match=message) as info:
    evaluator.evaluate(["bicubic"], 2, [str(data)], out, progress=False, niqe_params="none")
  assert str(out) in str(info.value)
  assert _snapshot(tmp_path) == before
  assert not (data / "results").exists()


@pytest.mark.parametrize("kind", ["a regular file", "under a regular file", "unwritable"])
def test_unusable_output_dir_is_refused_before_anything_is_loaded(tiny_set, tmp_path, kind,
                                                                  monkeypatch):
  (tmp_path / "file").write_text("keep")
  out = {"a regular file": tmp_path / "file", "under a regular file": tmp_path / "file" / "out",
         # Unwritable even for root, which ignores permission bits.
         "unwritable": pathlib.Path("/proc/fgrn_eval_out")}[kind]

  def too_early(*args, **kwargs):
    raise AssertionError("loaded something before --output_dir was checked")

  for name in ("load_niqe_params", "fgrn_method", "bicubic_method"):
    monkeypatch.setattr(evaluator, name, too_early)
  monkeypatch.setattr(evaluator.images, "read_rgb8", too_early)
  with pytest.raises(evaluator.EvalError, match=re.escape(str(out))):
    evaluator.evaluate(["bicubic", "fgrn"], 2, [str(tiny_set)], out, progress=False)
  assert (tmp_path / "file").read_text() == "keep"
  assert not out.exists() or out.is_file()


def test_existing_results_are_replaced_only_with_overwrite(tiny_set, tmp_path):
  out = tmp_path / "out"
  evaluator.evaluate(["bicubic"], 2, [str(tiny_set)], out, progress=False, niqe_params="none")
  before = _snapshot(out)
  assert sorted(before) == ["results.json", "results.md", f"{tiny_set.name}_x2.png"]
  with pytest.raises(evaluator.EvalError, match=r"results.json exists.*--overwrite"):
    evaluator.evaluate(["bicubic"], 2, [str(tiny_set)], out, progress=False, niqe_params="none")
  assert _snapshot(out) == before
  # Its own figure is not mistaken for a foreign image.
  evaluator.evaluate(["bicubic"], 2, [str(tiny_set)], out, progress=False, niqe_params="none",
                    overwrite=True)
  assert sorted(_snapshot(out)) == sorted(before)


def test_cli_output_dir_mistakes_give_one_line_and_leave_files_alone(tiny_set, tmp_path, capsys):
  data = tmp_path / "data"
  shutil.copytree(tiny_set, data)
  common = ("--method", "bicubic", "--datasets", str(data), "--niqe_params", "none",
            "--noprogress")
  before = _snapshot(data)
  last = _one_error_line(_run_cli(*common, "--output_dir", str(data)))  # the real command line
  assert str(data) in last and "dataset" in last
  assert _snapshot(data) == before  # no figure among the images: the next run counts 4 files

  def run(output_dir, overwrite=False):  # the rest in this process, with the tool's error policy
    found = {}
    main = entry.guarded("eval_main.py", lambda argv: found.update(results=evaluator.evaluate(
        ["bicubic"], 2, [str(data)], output_dir, niqe_params="none", progress=False,
        overwrite=overwrite)))
    code = main(["eval_main.py"])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else "", found.get("results")

  (tmp_path / "file").write_text("keep")
  code, last, _ = run(tmp_path / "file")
  assert code == 1 and last.startswith("eval_main.py: error:")
  assert str(tmp_path / "file") in last and (tmp_path / "file").read_text() == "keep"
  out = tmp_path / "out"
  code, _, results = run(out)
  entry_ = results["datasets"]["data"]
  assert code == 0 and (entry_["files"], entry_["evaluated"]) == (4, 3)  # d_tiny is too small
  written = _snapshot(out)
  code, last, _ = run(out)
  assert code == 1 and "results.json" in last and "--overwrite" in last
  assert _snapshot(out) == written
  assert run(out, overwrite=True)[0] == 0


# ---- counts ------------------------------------------------------------------------------------

def test_each_mean_is_over_the_images_it_says(tiny_set, niqe_params_path, tmp_path):
  data = tmp_path / "data"
  shutil.copytree(tiny_set, data)
  (data / "e_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
  write_image(data / "f_flat.png", np.full((40, 40, 3), 90, np.uint8))  # PSNR inf
  results = evaluator.evaluate(["bicubic"], 2, [str(data)], tmp_path / "out", progress=False,
                              niqe_params=niqe_params_path)
  entry = results["datasets"]["data"]
  assert entry["files"] == 6 and entry["evaluated"] == 4 and len(entry["skipped"]) == 2
  m = entry["methods"]["bicubic"]
  per = m["per_image"]
  assert m["images"] == len(per) == entry["evaluated"]
  for key in ("psnr", "ssim", "piqe"):
    assert m[key] == pytest.approx(np.mean([r[key] for r in per])), key
  defined = [r["niqe"] for r in per if r["niqe"] is not None]
  assert m["niqe_defined"] == len(defined) and m["niqe_undefined"] == len(per) - len(defined)
  md = (tmp_path / "out" / "results.md").read_text()
  assert "4 of 6 evaluated" in md
  # Every table's means are over 4 images, not the 6 files a reader compares with the paper's.
  assert md.count("| Method | data (4 of 6 images) |") == 3
