"""Tests for `fgrn` (`python -m fgrn_tf`) {downscale,upscale,roundtrip}: outputs, messages, exit
codes. The commands run in this process through `commands.run` with the tool's error policy
(`entry.guarded`); the flags themselves are checked on the real command line, in subprocesses
(absl flags are process-wide)."""

import os
import re
import sys

import forked_tools
import numpy as np
import pytest
from conftest import ROOT
from helpers import write_model_dir

from fgrn_tf import config, workdir
from fgrn_tf.cli import entry
from fgrn_tf.data import images
from fgrn_tf.models import receptive_field
from fgrn_tf.rescale import commands
from fgrn_tf.runtime import shipped


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return write_model_dir(tmp_path_factory.mktemp("model"))


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


NAMES = ["deep.png", "gray.png", "odd.png", "rgba.png"]
PROG = "fgrn"  # fgrn_tf.cli.rescale.PROG; not imported: its absl flags are process-wide


def run(capsys, command, *inputs, **options):
  """Runs a command as the tool does, minus the flag parsing: (exit code, stdout, stderr)."""
  main = entry.guarded(PROG, lambda argv: commands.run(command, [str(i) for i in inputs],
                                                          **options))
  code = main([PROG])
  out, err = capsys.readouterr()
  return code, out, err


def refusal(err):
  """The one line a refused run prints, without the program's name."""
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), err
  return lines[0].removeprefix(f"{PROG}: ")


def errors_of(err):
  return [line for line in err.splitlines() if line.startswith("error:")]


def test_each_command_keeps_names_sizes_and_kinds(model_dir, inputs, tmp_path, capsys):
  code, _, err = run(capsys, "downscale", inputs, model=model_dir, output_dir=tmp_path / "lr")
  assert code == 0, err
  assert "downscale: 4 done, 0 failed" in err and "images/s" in err
  assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == NAMES
  assert images.decode(tmp_path / "lr" / "odd.png").rgb.shape == (12, 16, 3)

  code, _, err = run(capsys, "upscale", tmp_path / "lr" / "*.png", model=model_dir,
                     output_dir=tmp_path / "hr")
  assert code == 0, err
  code, out, err = run(capsys, "roundtrip", inputs, model=model_dir, scale=2,
                       output_dir=tmp_path / "rt", lr_dir=tmp_path / "rtlr")
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
                     inputs / "text.png", inputs / "truncated.png", model=model_dir,
                     output_dir=tmp_path / "out")
  assert code == 1
  errors = errors_of(err)
  assert len(errors) == 3
  for name in ("missing.png", "text.png", "truncated.png"):
    assert sum(name in line for line in errors) == 1
  assert "Traceback" not in err
  assert "downscale: 1 done, 3 failed" in err
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["odd.png"]


def test_existing_output_needs_overwrite(model_dir, inputs, tmp_path, capsys):
  args = ["downscale", inputs / "odd.png"]
  options = {"model": model_dir, "output_dir": tmp_path / "out"}
  assert run(capsys, *args, **options)[0] == 0
  before = (tmp_path / "out" / "odd.png").stat().st_mtime_ns
  code, _, err = run(capsys, *args, **options)
  assert code == 1 and "exists (pass --overwrite to replace it)" in err
  assert (tmp_path / "out" / "odd.png").stat().st_mtime_ns == before
  assert run(capsys, *args, **options, overwrite=True)[0] == 0


def test_model_of_another_scale_is_refused(model_dir, inputs, tmp_path, capsys):
  code, _, err = run(capsys, "roundtrip", inputs, model=model_dir, scale=4)
  assert code == 2
  assert refusal(err) == f"error: model {model_dir} is x2 but --scale 4 was asked for"


def test_missing_model_says_how_to_get_one(inputs, tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(shipped, "default_model_path", lambda scale: tmp_path / "none")
  code, _, err = run(capsys, "downscale", inputs, output_dir=tmp_path / "out")
  assert code == 2
  assert "train_main.py" in refusal(err) and "--model" in err
  code, _, err = run(capsys, "downscale", inputs, model=tmp_path / "nothing",
                     output_dir=tmp_path / "out")
  assert code == 2 and "nothing" in refusal(err)


def test_a_bundled_model_is_named_as_a_path_would_be(inputs, tmp_path, capsys):
  code, _, err = run(capsys, "downscale", inputs / "odd.png", model="mobile_x2",
                     output_dir=tmp_path / "lr")
  assert code == 0, err
  assert images.decode(tmp_path / "lr" / "odd.png").rgb.shape == (12, 16, 3)
  code, _, err = run(capsys, "downscale", inputs, model="mobile_x9", output_dir=tmp_path / "o")
  assert code == 2 and "bundled: codec_x2, codec_x4, fgrn_x2" in refusal(err)


def test_tile_smaller_than_the_receptive_field_is_refused(model_dir, inputs, tmp_path, capsys):
  code, _, err = run(capsys, "upscale", inputs, model=model_dir, output_dir=tmp_path / "o",
                     tile=16)
  assert code == 2 and "--tile 16 is too small" in err


# ---- the command line itself (subprocesses) ----------------------------------------------------

def _tool(*argv, timeout=300):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  return forked_tools.run([sys.executable, "-m", "fgrn_tf", *map(str, argv)], cwd=ROOT, env=env,
                          timeout=timeout)


@pytest.mark.slow  # a fresh interpreter importing TensorFlow: ~10 s idle, minutes when loaded
def test_module_entry_point_exits_nonzero_without_traceback(model_dir, inputs, tmp_path):
  (inputs / "text.png").write_text("not an image")
  proc = _tool("downscale", inputs / "text.png", inputs / "odd.png", "--model", model_dir,
               "-o", tmp_path / "out")
  assert proc.returncode == 1, proc.stderr
  assert "Traceback" not in proc.stderr
  assert f"error: {inputs / 'text.png'}: not a readable image" in proc.stderr
  assert (tmp_path / "out" / "odd.png").is_file()


def test_flags_have_one_spelling_and_reach_the_commands(model_dir, inputs, tmp_path):
  proc = _tool("roundtrip", inputs / "odd.png", inputs / "gray.png", "--model", model_dir,
               "-o", tmp_path / "rt", "--lr_dir", tmp_path / "lr", "--nometrics", "--tile", 0,
               "--scale", 2, "--max_pixels", 10**6)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == ""  # --nometrics: no PSNR lines, no mean
  assert "roundtrip: 2 done, 0 failed" in proc.stderr
  for folder in ("rt", "lr"):
    assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["gray.png", "odd.png"]
  # --output_dir is -o's long name; --max_pixels refuses a file over it, by name.
  proc = _tool("downscale", inputs / "odd.png", "--model", model_dir, "--output_dir",
               tmp_path / "down", "--max_pixels", 100)
  assert proc.returncode == 1, proc.stderr
  assert errors_of(proc.stderr) == [
      f"error: {inputs / 'odd.png'}: 23x31 is 713 pixels, over the limit of 100; raise it with "
      f"--max_pixels or FGRN_MAX_PIXELS"]
  # --lr_format/--quality spell --codec apart.
  proc = _tool("downscale", inputs / "odd.png", "--model", model_dir, "-o", tmp_path / "jpeg",
               "--lr_format", "jpeg", "--quality", 80)
  assert proc.returncode == 0, proc.stderr
  assert [p.name for p in (tmp_path / "jpeg").iterdir()] == ["odd.jpg"]


@pytest.mark.parametrize("argv,says", [
    ([], "give a command"),
    (["frob", "x.png"], "unknown command 'frob'"),
    (["downscale", "x.png"], "downscale needs -o OUTPUT_DIR"),
    (["downscale"], "downscale needs INPUT"),
    (["downscale", "x.png", "-o", "out", "--lr_dir", "lr"], "downscale takes no --lr_dir"),
    (["upscale", "x.png", "-o", "out", "--nometrics"], "upscale takes no --metrics"),
    (["roundtrip", "x.png", "--lr-dir", "lr"], "Unknown command line flag 'lr-dir'"),
    (["roundtrip", "x.png", "--no-metrics"], "Unknown command line flag 'no-metrics'"),
    (["roundtrip", "x.png", "--nometrics"], "roundtrip with --nometrics and neither -o nor"),
    (["roundtrip", "x.png", "--max_pixels", "0"], "--max_pixels=0"),
    (["roundtrip", "x.png", "--tile", "big"], "--tile"),
    (["roundtrip", "x.png", "--tile=-8"], "--tile -8"),
    (["info", "x.png"], "info takes no inputs"),
    (["info", "--scale", "3"], "--scale 3"),
    (["info", "--model", "m"], "info takes no --model"),
    (["downscale", "x.png", "-o", "out", "--codec", "jpeg:90", "--lr_format", "jpeg"],
     "not both"),
    (["downscale", "x.png", "-o", "out", "--quality", "90"], "--quality needs --lr_format"),
    (["roundtrip", "x.png", "--lr_format", "png", "--quality", "90"], "png is lossless"),
    (["upscale", "x.png", "-o", "out", "--lr_format", "jpeg"], "upscale takes no --lr_format"),
])
def test_command_line_mistakes_exit_2_in_one_line(argv, says):
  proc = _tool(*argv, timeout=120)
  assert proc.returncode == 2, proc.stderr
  assert says in refusal(proc.stderr) and proc.stdout == ""


# ---- refused before any work ------------------------------------------------------------------

@pytest.fixture()
def loads(monkeypatch):
  """Records each model load and marks it on stderr, so a test sees what came before it."""
  from fgrn_tf.runtime import backends

  real, calls = backends.load_backend, []

  def load(path, **kwargs):
    calls.append(path)
    print("LOADING MODEL", file=sys.stderr)
    return real(path, **kwargs)

  monkeypatch.setattr(backends, "load_backend", load)
  return calls


@pytest.fixture(scope="module")
def x4_model_dir(tmp_path_factory):
  return write_model_dir(tmp_path_factory.mktemp("model_x4"), scale=4)


@pytest.mark.parametrize("overwrite", [False, True])
def test_roundtrip_with_one_folder_for_hr_and_lr_is_refused_before_any_work(
    model_dir, inputs, tmp_path, capsys, loads, overwrite):
  out = tmp_path / "out"
  out.mkdir()
  (out / "odd.png").write_bytes(b"not made by the tool")
  code, _, err = run(capsys, "roundtrip", inputs, model=model_dir, output_dir=out, lr_dir=out,
                     overwrite=overwrite)
  assert code == 2
  line = refusal(err)
  assert "-o and --lr_dir" in line and str(out) in line
  assert (out / "odd.png").read_bytes() == b"not made by the tool"
  assert [p.name for p in out.iterdir()] == ["odd.png"] and not loads


def test_hr_and_lr_of_different_inputs_on_one_path_are_refused(model_dir, tmp_path, capsys, loads):
  rng = np.random.default_rng(1)
  images.write_image(tmp_path / "in" / "a.png", rng.integers(0, 256, (12, 12, 3), np.uint8))
  images.write_image(tmp_path / "in" / "sub" / "a.png", rng.integers(0, 256, (12, 12, 3), np.uint8))
  # The HR of in/sub/a.png and the LR of in/a.png are both out/sub/a.png.
  code, _, err = run(capsys, "roundtrip", tmp_path / "in", model=model_dir,
                     output_dir=tmp_path / "out", lr_dir=tmp_path / "out" / "sub")
  assert code == 2
  line = refusal(err)
  assert str(tmp_path / "out" / "sub" / "a.png") in line
  assert str(tmp_path / "in" / "a.png") in line and str(tmp_path / "in" / "sub" / "a.png") in line
  assert not (tmp_path / "out").exists() and not loads


def test_two_inputs_of_one_name_are_refused_before_any_work(model_dir, inputs, tmp_path, capsys,
                                                            loads):
  images.write_image(tmp_path / "other" / "odd.png", np.zeros((10, 10, 3), np.uint8))
  code, _, err = run(capsys, "downscale", inputs / "odd.png", tmp_path / "other" / "odd.png",
                     model=model_dir, output_dir=tmp_path / "out")
  assert code == 2
  line = refusal(err)
  assert str(inputs / "odd.png") in line and str(tmp_path / "other" / "odd.png") in line
  assert str(tmp_path / "out" / "odd.png") in line
  assert not (tmp_path / "out").exists() and not loads


def test_upscale_refuses_an_lr_recorded_for_another_scale(model_dir, x4_model_dir, inputs,
                                                          tmp_path, capsys, loads, monkeypatch):
  assert run(capsys, "downscale", inputs / "odd.png", model=model_dir,
             output_dir=tmp_path / "lr")[0] == 0
  images.write_image(tmp_path / "plain.png", np.zeros((8, 8, 3), np.uint8))  # records nothing
  lr = tmp_path / "lr" / "odd.png"
  # The model's own scale (no --scale): that file fails, the others go on.
  code, _, err = run(capsys, "upscale", lr, tmp_path / "plain.png", model=x4_model_dir,
                     output_dir=tmp_path / "hr")
  assert code == 1
  assert errors_of(err) == [f"error: {lr}: made by an x2 model (fgrn:scale=2), but the model is "
                            f"x4; upscale it with an x2 model"]
  assert sorted(p.name for p in (tmp_path / "hr").iterdir()) == ["plain.png"]
  # --scale 4 picks the shipped x4 model: refused from the record alone, before it loads.
  monkeypatch.setattr(shipped, "default_model_path", lambda scale: x4_model_dir)
  loads.clear()
  code, _, err = run(capsys, "upscale", lr, scale=4, output_dir=tmp_path / "hr4")
  assert code == 1 and len(errors_of(err)) == 1 and "x2" in err and "x4" in err
  assert not (tmp_path / "hr4").exists() and not loads


def test_output_folder_that_is_a_file_is_refused_before_any_work(model_dir, inputs, tmp_path,
                                                                  capsys, loads):
  (tmp_path / "file").write_text("x")
  file = tmp_path / "file"
  for option, output, says in (("output_dir", file, f"-o {file} is a file"),
                               ("output_dir", file / "out", f"-o {file / 'out'}: {file} is a file"),
                               ("lr_dir", file, f"--lr_dir {file} is a file")):
    code, _, err = run(capsys, "roundtrip", inputs / "odd.png", model=model_dir,
                       **{option: output})
    assert code == 2
    assert refusal(err) == f"error: {says}, not a folder"
  assert file.read_text() == "x" and not loads


@pytest.mark.parametrize("options,says", [
    ({"scale": 0}, "--scale 0"), ({"scale": -2}, "--scale -2"),
    ({"scale": 1}, "--scale 1"), ({"scale": 3}, "--scale 3"),
    ({"tile": -8}, "--tile -8"), ({"tile": 16}, "--tile 16 is too small"),
])
def test_bad_flags_are_refused_in_one_line_before_the_model_loads(model_dir, inputs, tmp_path,
                                                                  capsys, loads, options, says):
  code, _, err = run(capsys, "roundtrip", inputs, model=model_dir, **options)
  assert code == 2
  assert says in refusal(err) and not loads


def test_shipped_model_of_no_scale_is_refused_before_loading(inputs, tmp_path, capsys, loads):
  code, _, err = run(capsys, "downscale", inputs, scale=0, output_dir=tmp_path / "o")
  assert code == 2 and "--scale 0" in refusal(err) and not loads


def test_tile_minimum_in_the_docs_is_the_one_the_code_enforces(tmp_path, inputs, capsys, loads):
  docs = (ROOT / "docs" / "cli.md").read_text()
  stated = int(re.search(r"naming the minimum: (\d+) for\s+the paper's x2", docs).group(1))
  paper = config.x2()
  assert f"{receptive_field.receptive_margins(paper.model)[0]} LR pixels for the paper's x2" \
      in docs
  workdir.write_experiment(tmp_path / "paper", paper)  # no weights: refused before any load
  code, _, err = run(capsys, "downscale", inputs, model=tmp_path / "paper",
                     output_dir=tmp_path / "o", tile=stated - 1)
  assert code == 2
  assert refusal(err) == (f"error: --tile {stated - 1} is too small for this model (x2): use "
                          f"at least {stated}, or 0 for whole images")
  assert not loads


def test_input_errors_come_before_the_model_loads(model_dir, inputs, tmp_path, capsys, loads):
  (inputs / "text.png").write_text("not an image")
  (inputs / "empty.png").write_bytes(b"")
  code, _, err = run(capsys, "downscale", inputs / "missing.png", inputs / "text.png",
                     inputs / "empty.png", inputs / "odd.png", model=model_dir,
                     output_dir=tmp_path / "out")
  assert code == 1
  lines = err.splitlines()
  assert errors_of(err) == [
      f"error: {inputs / 'missing.png'}: no such file or folder",
      f"error: {inputs / 'text.png'}: not a readable image (corrupt, truncated or unknown format)",
      f"error: {inputs / 'empty.png'}: empty file"]
  assert max(i for i, line in enumerate(lines) if line.startswith("error:")) < \
      lines.index("LOADING MODEL")
  # With nothing left to do the model is not loaded at all.
  loads.clear()
  code, _, err = run(capsys, "downscale", inputs / "text.png", model=model_dir,
                     output_dir=tmp_path / "out2")
  assert code == 1 and not loads and "0 done, 1 failed" in err


# ---- what is said during and after a run ------------------------------------------------------

def test_failed_file_gets_no_progress_line(model_dir, inputs, tmp_path, capsys):
  data = images.encode("x.png", np.zeros((30, 30, 3), np.uint8))
  (inputs / "truncated.png").write_bytes(data[:len(data) // 2])
  code, _, err = run(capsys, "downscale", inputs / "truncated.png", inputs / "odd.png",
                     model=model_dir, output_dir=tmp_path / "out")
  assert code == 1
  progress = [line for line in err.splitlines() if line.startswith("[")]
  assert len(progress) == 1 and "odd.png" in progress[0] and "images/s" in progress[0]
  assert re.match(r"\[2/2\] ", progress[0])


def test_mean_line_counts_only_images_that_have_the_metric(model_dir, inputs, tmp_path, capsys):
  rng = np.random.default_rng(3)
  images.write_image(inputs / "tiny.png", rng.integers(0, 256, (4, 6, 3), np.uint8))  # no PSNR
  images.write_image(inputs / "small.png", rng.integers(0, 256, (12, 14, 3), np.uint8))  # no SSIM
  code, out, err = run(capsys, "roundtrip", inputs / "odd.png", inputs / "tiny.png",
                       inputs / "small.png", model=model_dir)
  assert code == 0, err
  assert re.search(r"^mean  PSNR \d+\.\d\d dB \(2 of 3 images\)  SSIM -?[\d.]+ \(1 of 3 images\)$",
                   out, re.M), out
  code, out, err = run(capsys, "roundtrip", inputs / "odd.png", inputs / "tiny.png",
                       model=model_dir)
  assert re.search(r"^mean of 1  PSNR \d+\.\d\d dB  SSIM -?[\d.]+$", out, re.M), out


def test_no_output_folder_is_left_when_every_file_fails(model_dir, inputs, tmp_path, capsys):
  data = images.encode("x.png", np.zeros((30, 30, 3), np.uint8))
  (inputs / "truncated.png").write_bytes(data[:len(data) // 2])
  code, _, err = run(capsys, "roundtrip", inputs / "truncated.png", model=model_dir,
                     output_dir=tmp_path / "new" / "hr", lr_dir=tmp_path / "new" / "lr")
  assert code == 1 and len(errors_of(err)) == 1
  assert not (tmp_path / "new").exists()


def test_roundtrip_through_a_codec_upscales_the_decoded_lr_and_writes_its_file(
    capsys, model_dir, inputs, tmp_path):
  code, lossless, _ = run(capsys, "roundtrip", inputs / "odd.png", model=model_dir)
  assert code == 0
  code, out, _ = run(capsys, "roundtrip", inputs / "odd.png", model=model_dir,
                     lr_dir=tmp_path / "lr", codec="jpeg:50")
  assert code == 0 and "LR jpeg:50" in out and "bytes" in out
  psnr = lambda text: float(text.split("PSNR ")[1].split()[0])  # noqa: E731
  assert psnr(out) != psnr(lossless)  # the codec's loss reached the reconstruction
  data = (tmp_path / "lr" / "odd.jpg").read_bytes()
  assert data[:2] == b"\xff\xd8" and not (tmp_path / "lr" / "odd.png").exists()
  assert f"{len(data)} bytes" in out


def test_downscale_writes_the_codecs_format_and_refuses_bad_specs(capsys, model_dir, inputs,
                                                                   tmp_path):
  code, _, _ = run(capsys, "downscale", inputs / "odd.png", model=model_dir,
                   output_dir=tmp_path / "o", codec="webp:80")
  assert code == 0
  assert (tmp_path / "o" / "odd.webp").read_bytes()[8:12] == b"WEBP"
  for spec, word in (("jpeg:0", "1..100"), ("gif:5", "unknown codec"), ("jpeg", "quality")):
    code, _, err = run(capsys, "downscale", inputs / "odd.png", model=model_dir,
                       output_dir=tmp_path / "p", codec=spec)
    assert code == 2 and word in refusal(err) and not (tmp_path / "p").exists()
  code, _, err = run(capsys, "upscale", inputs / "odd.png", model=model_dir,
                     output_dir=tmp_path / "q", codec="jpeg:90")
  assert code == 2 and "--codec" in refusal(err)


def test_upscale_of_a_jpeg_lr_by_a_png_trained_model_says_so_in_one_line(capsys, model_dir,
                                                                          inputs, tmp_path):
  code, _, _ = run(capsys, "downscale", inputs / "odd.png", model=model_dir,
                   output_dir=tmp_path / "lr", codec="jpeg:90")
  assert code == 0
  code, _, err = run(capsys, "upscale", tmp_path / "lr" / "odd.jpg", model=model_dir,
                     output_dir=tmp_path / "hr")
  notes = [line for line in err.splitlines() if line.startswith("note:")]
  assert code == 0 and len(notes) == 1 and "lossless (PNG)" in notes[0]
  code, _, err = run(capsys, "upscale", inputs / "odd.png", model=model_dir,
                     output_dir=tmp_path / "hr2")
  assert code == 0 and "note:" not in err


def test_a_bug_stops_the_run_and_an_unfit_image_is_one_failure(model_dir, inputs, tmp_path,
                                                               capsys, monkeypatch):
  from fgrn_tf.runtime import backends

  real = backends.load_backend

  def broken(path, **kwargs):
    backend = real(path, **kwargs)
    backend.downscale = lambda hr: 1 / 0  # a bug, not a bad file: must not become a message
    return backend

  monkeypatch.setattr(backends, "load_backend", broken)
  with pytest.raises(ZeroDivisionError):
    commands.run("downscale", [str(inputs / "odd.png")], model=model_dir,
                 output_dir=tmp_path / "out")
  monkeypatch.setattr(backends, "load_backend", real)
  images.write_image(inputs / "dot.png", np.zeros((1, 1, 3), np.uint8))
  code, _, err = run(capsys, "downscale", inputs / "dot.png", inputs / "odd.png",
                     model=model_dir, output_dir=tmp_path / "out")
  assert code == 1 and "Traceback" not in err
  assert errors_of(err) == [f"error: {inputs / 'dot.png'}: 1x1 is smaller than the scale 2"]
  assert "downscale: 1 done, 1 failed" in err


def test_a_run_with_nothing_done_reports_no_rate():
  assert commands.summary("roundtrip", 0, 1, 0, 0.0) == "roundtrip: 0 done, 1 failed in 0.0 s"
  assert commands.summary("roundtrip", 2, 0, 0, 4.0).endswith("in 4.0 s (0.50 images/s)")


TOOLS = {"fgrn": ["-m", "fgrn_tf", "downscale", "x.png", "-o", "out"],
         "fgrn-eval": [str(ROOT / "eval_main.py"), "--output_dir", "out"],
         "fgrn-export": [str(ROOT / "export" / "export_main.py"), "--output_dir", "out"],
         "fgrn-train": [str(ROOT / "train_main.py"), "--workdir", "out"]}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_flag_a_tool_cannot_take_is_one_line_and_exit_2_in_every_tool(tool, tmp_path):
  # absl parses before TensorFlow is imported: each of these takes a second.
  shared = {"fgrn": "--scale=two", "fgrn-eval": "--scale=two", "fgrn-export": "--scale=two",
            "fgrn-train": "--max_pixels=many"}[tool]
  for bad in (shared, "--no_such_flag"):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    proc = forked_tools.run([sys.executable, *TOOLS[tool], bad], cwd=tmp_path, timeout=120,
                            env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and ": error: " in lines[0], proc.stderr
    assert bad.split("=")[0].lstrip("-") in lines[0]
    assert not (tmp_path / "out").exists()
