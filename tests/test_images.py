"""images.decode's pixel limit: a file whose header claims a huge size is refused by name before
any decoding, by the command-line tool, training and evaluation alike, and the limit can be
raised (flags, FGRN_MAX_PIXELS)."""

import json
import os
import pathlib
import struct
import sys
import time
import zlib

import cv2
import forked_tools
import numpy as np
import PIL.Image
import pytest
from helpers import photo, write_model_dir

from fgrn_tf.data import images

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Over OpenCV's own default ceiling (2**30 pixels), so only a raised ceiling lets cv2 try it.
OVER_OPENCV = 33_000


def _chunk(kind: bytes, data: bytes) -> bytes:
  return (struct.pack(">I", len(data)) + kind + data
          + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def fake_png(path, width: int, height: int, gray: bool = False) -> pathlib.Path:
  """A valid-looking PNG whose IHDR claims width x height, with a few bytes of pixel data."""
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if gray else 2, 0, 0, 0)
  path = pathlib.Path(path)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                   + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))
  return path


@pytest.fixture(autouse=True)
def default_limit(monkeypatch):
  monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
  images.set_max_pixels(None)
  yield
  images.set_max_pixels(None)


def _no_decoding(*args, **kwargs):
  raise AssertionError("the decoder was called")


def _env(**changes):
  env = {k: v for k, v in os.environ.items() if k != images.MAX_PIXELS_ENV}
  return {**env, **changes}


# ---- images.decode -----------------------------------------------------------------------------

@pytest.mark.parametrize("side", [100_000, 20_000])
def test_a_header_over_the_limit_is_refused_by_name_without_decoding(tmp_path, monkeypatch, side):
  big = fake_png(tmp_path / "big.png", side, side)
  monkeypatch.setattr(cv2, "imdecode", _no_decoding)
  start = time.perf_counter()
  with pytest.raises(images.ImageError) as e:
    images.decode(big)
  assert time.perf_counter() - start < 1.0
  message = str(e.value)
  assert "\n" not in message
  assert str(big) in message and f"{side}x{side}" in message
  assert f"{images.DEFAULT_MAX_PIXELS:,}" in message and images.MAX_PIXELS_ENV in message


def test_a_normal_image_still_decodes(tmp_path):
  path = tmp_path / "ok.png"
  images.write_image(path, photo(24, 30))
  np.testing.assert_array_equal(images.decode(path).rgb, photo(24, 30))


def test_the_limit_is_inclusive_and_raised_by_environment_or_setter(tmp_path, monkeypatch):
  path = tmp_path / "ok.png"
  images.write_image(path, photo(20, 30))  # 600 pixels
  monkeypatch.setenv(images.MAX_PIXELS_ENV, "599")
  with pytest.raises(images.ImageError, match=r"ok\.png: 20x30 .* over the limit of 599"):
    images.decode(path)
  monkeypatch.setenv(images.MAX_PIXELS_ENV, "600")
  assert images.decode(path).rgb.shape == (20, 30, 3)
  monkeypatch.setenv(images.MAX_PIXELS_ENV, "10")
  images.set_max_pixels(600, flag="--max_pixels")  # a flag wins over the environment
  assert images.max_pixels() == 600 and images.decode(path).rgb.shape == (20, 30, 3)
  images.set_max_pixels(None, flag="--max_pixels")
  with pytest.raises(images.ImageError, match="raise it with --max_pixels or FGRN_MAX_PIXELS"):
    images.decode(path)


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_a_bad_limit_in_the_environment_is_named_in_the_error(tmp_path, monkeypatch, value):
  path = tmp_path / "ok.png"
  images.write_image(path, photo(8, 8))
  monkeypatch.setenv(images.MAX_PIXELS_ENV, value)
  with pytest.raises(images.ImageError, match=f"ok.png: {images.MAX_PIXELS_ENV}='{value}'"):
    images.decode(path)


def test_a_limit_under_one_pixel_is_refused_by_the_setter():
  with pytest.raises(ValueError, match="at least 1"):
    images.set_max_pixels(0)


def test_files_pillow_cannot_identify_fall_through_to_the_decoder(tmp_path, monkeypatch):
  good = tmp_path / "ok.png"
  images.write_image(good, photo(10, 12))
  text = tmp_path / "text.png"
  text.write_text("not an image")
  with pytest.raises(images.ImageError, match="text.png: not a readable image"):
    images.decode(text)

  def unidentified(*args, **kwargs):
    raise PIL.UnidentifiedImageError("cannot identify image file")

  monkeypatch.setattr(PIL.Image, "open", unidentified)
  assert images.decode(good).rgb.shape == (10, 12, 3)


def test_a_size_under_our_limit_but_over_opencvs_is_one_error_not_a_traceback(tmp_path):
  # cv2 is already imported in this process, so its own ceiling (2**30 pixels) stands.
  big = fake_png(tmp_path / "big.png", 100_000, 100_000)
  images.set_max_pixels(10**11)
  with pytest.raises(images.ImageError, match="big.png: .*OPENCV_IO_MAX_IMAGE_PIXELS"):
    images.decode(big)


def test_raising_the_limit_before_opencv_starts_raises_its_ceiling_too(tmp_path):
  # One byte a pixel (gray): the decoder's buffer is reserved, not touched, before the bad data.
  big = fake_png(tmp_path / "big.png", OVER_OPENCV, OVER_OPENCV, gray=True)
  code = ("import sys\nfrom fgrn_tf.data import images\n"
          "try:\n  images.decode(sys.argv[1])\nexcept images.ImageError as e:\n  print(e)\n")
  result = forked_tools.run([sys.executable, "-c", code, str(big)], cwd=ROOT, timeout=60,
                            env=_env(**{images.MAX_PIXELS_ENV: str(2**31)}))
  assert result.returncode == 0, result.stderr
  assert "big.png: not a readable image" in result.stdout, result.stdout


# ---- the callers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return write_model_dir(tmp_path_factory.mktemp("model"))


def test_cli_refuses_a_huge_file_in_one_line_and_goes_on(tmp_path, model_dir):
  big = fake_png(tmp_path / "big.png", 100_000, 100_000)
  past_opencv = fake_png(tmp_path / "past_opencv.png", OVER_OPENCV, OVER_OPENCV, gray=True)
  good = tmp_path / "good.png"
  images.write_image(good, photo(24, 30))
  result = forked_tools.run(
      [sys.executable, "-m", "fgrn_tf", "roundtrip", str(big), str(past_opencv), str(good),
       "-o", str(tmp_path / "out"), "--model", str(model_dir), "--max_pixels", str(2**31)],
      cwd=ROOT, timeout=300, env=_env())
  assert result.returncode == 1, result.stderr
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 2, result.stderr
  assert f"{big}: 100000x100000" in errors[0] and f"limit of {2**31:,}" in errors[0]
  assert "--max_pixels" in errors[0]
  # Under the raised limit, so the decoder (its ceiling raised with it) reads the bad data.
  assert f"{past_opencv}: not a readable image" in errors[1]
  assert "roundtrip: 1 done, 2 failed" in result.stderr
  assert images.decode(tmp_path / "out" / "good.png").rgb.shape == (24, 30, 3)


def test_eval_skips_a_huge_file_with_its_reason_like_an_unreadable_one(tmp_path):
  data = tmp_path / "Set"
  data.mkdir()
  fake_png(data / "big.png", 100_000, 100_000)
  fake_png(data / "past_opencv.png", OVER_OPENCV, OVER_OPENCV, gray=True)
  images.write_image(data / "a.png", photo(40, 36))
  out = tmp_path / "results"
  result = forked_tools.run(
      [sys.executable, str(ROOT / "eval_main.py"), "--method", "bicubic", "--scale", "2",
       "--datasets", str(data), "--output_dir", str(out), "--niqe_params", "none",
       "--noprogress", "--max_pixels", str(2**31)],
      cwd=ROOT, timeout=300, env=_env())
  assert result.returncode == 0, result.stderr
  assert "Traceback" not in result.stderr
  assert "Set x2 bicubic: PSNR" in result.stdout, result.stdout
  assert "(1 of 3 images; 2 skipped, see results.md)" in result.stdout  # fgrn-eval's wording
  skipped = json.loads((out / "results.json").read_text())["datasets"]["Set"]["skipped"]
  reasons = {s["name"]: s["reason"] for s in skipped}
  assert sorted(reasons) == ["big", "past_opencv"]
  assert "big.png: 100000x100000 is 10,000,000,000 pixels, over the limit of 2,147,483,648; " \
      "raise it with --max_pixels or FGRN_MAX_PIXELS" in reasons["big"]
  # Under the raised limit, so the decoder (its ceiling raised with it) reads the bad data.
  assert "past_opencv.png: not a readable image" in reasons["past_opencv"]
  md = (out / "results.md").read_text()
  assert [line for line in md.splitlines() if "skipped Set/big:" in line] == \
      [f"- skipped Set/big: {reasons['big']}"]


@pytest.mark.slow
def test_training_skips_a_huge_file_in_one_line_and_trains_on_the_rest(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  fake_png(data / "big.png", 100_000, 100_000)
  for i in range(3):
    images.write_image(data / f"img{i}.png", photo(40, 40, i))
  result = forked_tools.run(
      [sys.executable, "train_main.py", "--preset", "smoke", "--workdir", str(tmp_path / "run"),
       "--data_dirs", str(data), "--steps", "1", "--steps_per_epoch", "1",
       "--max_pixels", "1000000"], cwd=ROOT, timeout=240, env=_env())
  assert result.returncode == 0, result.stderr
  assert "Traceback" not in result.stderr
  lines = [line for line in result.stderr.splitlines() if "big.png" in line]
  assert len(lines) == 1, result.stderr
  assert "100000x100000" in lines[0] and "limit of 1,000,000" in lines[0]
  assert "--max_pixels" in lines[0]
  assert "finished: 1/1 steps" in result.stdout
