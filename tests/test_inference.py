"""Tests for fgrn_tf/inference.py: sizes, tiles, gray/alpha/16-bit, metrics, safe batch writes."""

import errno
import math
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_model

from fgrn_tf import inference
from fgrn_tf.backends import KerasBackend
from fgrn_tf.data import images, pngtext
from fgrn_tf.data.imresize import imresize_np
from fgrn_tf.metrics import psnr_ssim


@pytest.fixture(scope="module")
def backend():
  return KerasBackend(tiny_model(seed=3))


def photo(h, w, seed=0, channels=3, dtype=np.uint8):
  """Smooth colours plus noise: a round trip of it is far from trivial and far from noise."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:h, 0:w].astype(np.float64)
  planes = [128 + 90 * np.sin(x / (7 + 3 * c) + y / (11 + c)) for c in range(channels)]
  image = np.stack(planes, -1) + rng.normal(0, 8, (h, w, channels))
  top = np.iinfo(dtype).max
  return np.clip(np.round(image * top / 255), 0, top).astype(dtype)


# ---- tiles --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,window,margin", [(10, 0, 3), (10, 20, 3), (100, 30, 10), (97, 31, 9),
                                             (64, 33, 11), (1000, 512, 43)])
def test_spans_cover_every_pixel_once_with_context(n, window, margin):
  spans = inference.spans(n, window, margin)
  covered = np.zeros(n, int)
  for a, b, start, stop in spans:
    covered[a:b] += 1
    assert stop - start == min(n, window) if window else n
    assert 0 <= start <= a < b <= stop <= n
    assert a - start >= margin or start == 0
    assert stop - b >= margin or stop == n
  assert (covered == 1).all()


def test_spans_refuse_windows_too_small_for_the_margin():
  with pytest.raises(ValueError, match="too small"):
    inference.spans(100, 20, 10)


def _reach(fn, shape, at):
  """How far (in output pixels, Chebyshev) the effect of changing one input pixel spreads."""
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 1, (1,) + shape + (3,)).astype(np.float32)
  y = x.copy()
  y[0, at[0], at[1]] += 0.5
  diff = np.abs(fn(tf.constant(y)).numpy() - fn(tf.constant(x)).numpy()).max(axis=(0, 3))
  rows, cols = np.nonzero(diff > 0)
  return diff, rows, cols


def test_receptive_margins_match_the_network():
  model = tiny_model(seed=1)
  rng = np.random.default_rng(1)
  for v in model.weights:  # large random weights, so an effect is not lost in float32 sums
    v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
  down, up = inference.receptive_margins(model.model_config)
  s = model.scale
  # Downscale, before quantization (rounding can hide a change but never spread it).
  gd = lambda x: model.flow.forward(model.downscaler(x))[0]  # noqa: E731
  size = 2 * down + 9
  _, rows, cols = _reach(gd, (s * size, s * size), (s * (size // 2), s * (size // 2)))
  assert max(abs(rows - size // 2).max(), abs(cols - size // 2).max()) == down
  gu = lambda x: model.upscaler(model.flow.inverse(x)[0])  # noqa: E731
  size = 2 * up + 9
  _, rows, cols = _reach(gu, (size, size), (size // 2, size // 2))
  lr_rows, lr_cols = rows // s, cols // s
  assert max(abs(lr_rows - size // 2).max(), abs(lr_cols - size // 2).max()) == up


def test_tiled_round_trip_equals_untiled(backend):
  hr = photo(331, 297, seed=1)
  tile = inference.min_tile(backend)
  assert len(inference.spans(hr.shape[0] // 2, tile // 2, max(inference.margins_for(backend)))) > 2
  whole = inference.upscale_rgb(backend, inference.downscale_rgb(backend, hr, tile=0),
                                hr.shape[:2], tile=0)
  lr = inference.downscale_rgb(backend, hr, tile=tile)
  tiled = inference.upscale_rgb(backend, lr, hr.shape[:2], tile=tile)
  assert tiled.shape == whole.shape == hr.shape
  p_whole, p_tiled = psnr_ssim.psnr_y(hr, whole, 2), psnr_ssim.psnr_y(hr, tiled, 2)
  assert abs(p_whole - p_tiled) < 0.01
  # Float rounding in different window shapes may move a value across a rounding boundary.
  assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
  assert (tiled != whole).mean() < 1e-3


def test_tiled_alpha_equals_untiled():
  alpha = photo(203, 171, seed=2, channels=1)[:, :, 0]
  for up in (False, True):
    whole = inference.resize_alpha(alpha, 2, up=up, tile=0)
    tiled = inference.resize_alpha(alpha, 2, up=up, tile=40)
    np.testing.assert_array_equal(tiled, whole)


def test_tile_must_hold_three_margins(backend):
  m = max(inference.margins_for(backend))
  assert inference.min_tile(backend) == backend.scale * 3 * m
  with pytest.raises(ValueError, match="too small"):
    inference.downscale_rgb(backend, photo(400, 400), tile=inference.min_tile(backend) - 4)


# ---- sizes, gray, alpha, 16 bit ------------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(37, 51), (20, 31), (8, 9)])
def test_odd_sizes_downscale_to_ceil_and_round_trip_to_the_input_size(backend, h, w):
  hr = inference.Picture(photo(h, w))
  lr = inference.downscale_picture(backend, hr)
  assert lr.rgb.shape == (math.ceil(h / 2), math.ceil(w / 2), 3)
  assert lr.hr_size == (h, w)
  assert inference.upscale_picture(backend, lr).rgb.shape == (h, w, 3)
  # Without the recorded size the upscale is s*h x s*w.
  bare = inference.upscale_picture(backend, inference.Picture(lr.rgb))
  assert bare.rgb.shape == (2 * lr.rgb.shape[0], 2 * lr.rgb.shape[1], 3)


def test_padding_reflects_the_last_rows_and_columns():
  x = np.arange(15).reshape(3, 5)
  padded = inference.pad_to_multiple(x, 2)
  assert padded.shape == (4, 6)
  np.testing.assert_array_equal(padded[3], x[1].tolist() + [x[1, 3]])
  np.testing.assert_array_equal(padded[:3, 5], x[:, 3])
  with pytest.raises(ValueError, match="smaller than the scale"):
    inference.pad_to_multiple(np.zeros((1, 5)), 2)


def test_png_lr_records_the_hr_size_and_upscale_crops_to_it(backend, tmp_path):
  hr = inference.Picture(photo(37, 51))
  lr = inference.downscale_picture(backend, hr)
  (tmp_path / "lr.png").write_bytes(inference.encode_picture(tmp_path / "lr.png", lr, scale=2))
  assert pngtext.read_text(tmp_path / "lr.png") == {"fgrn:hr-size": "37x51", "fgrn:scale": "2"}
  back = inference.Picture.read(tmp_path / "lr.png")
  np.testing.assert_array_equal(back.rgb, lr.rgb)
  assert back.hr_size == (37, 51)
  assert inference.upscale_picture(backend, back).rgb.shape == (37, 51, 3)
  # A record that does not fit the LR size (another scale, an edited image) is ignored.
  wrong = inference.Picture(lr.rgb, hr_size=(80, 51))
  assert inference.upscale_picture(backend, wrong).rgb.shape == (38, 52, 3)


def test_png_text_survives_decoding_and_ignores_other_files(tmp_path):
  data = pngtext.add_text(images.encode("x.png", photo(5, 6)), {"k": "v", "fgrn:x": "1 2"})
  (tmp_path / "x.png").write_bytes(data)
  assert pngtext.read_text(tmp_path / "x.png") == {"k": "v", "fgrn:x": "1 2"}
  np.testing.assert_array_equal(images.decode(tmp_path / "x.png").rgb, photo(5, 6))
  (tmp_path / "t.png").write_text("not a png")
  assert pngtext.read_text(tmp_path / "t.png") == {}
  assert pngtext.read_text(tmp_path / "missing.png") == {}


def test_gray_is_processed_as_rgb_and_written_gray(backend, tmp_path):
  gray = photo(21, 30, channels=1)[:, :, 0]
  images.write_image(tmp_path / "g.png", gray)
  pic = inference.Picture.read(tmp_path / "g.png")
  lr = inference.downscale_picture(backend, pic)
  assert lr.file_array().shape == (11, 15)
  expected = np.round(inference.downscale_rgb(backend, np.repeat(gray[:, :, None], 3, 2))
                      .mean(axis=2)).astype(np.uint8)
  np.testing.assert_array_equal(lr.file_array(), expected)


def test_alpha_is_resized_with_matlab_bicubic_and_reattached(backend):
  rgba = photo(24, 30, seed=4, channels=4)
  hr = inference.Picture(rgba[:, :, :3], alpha=rgba[:, :, 3])
  lr = inference.downscale_picture(backend, hr)
  expected = np.clip(np.round(imresize_np(rgba[:, :, 3], 0.5)), 0, 255)
  assert np.abs(lr.alpha.astype(int) - expected).max() <= 1  # float32 TF op vs float64 numpy
  out = lr.file_array()
  assert out.shape == (12, 15, 4)
  np.testing.assert_array_equal(out[:, :, :3], inference.downscale_rgb(backend, rgba[:, :, :3]))
  up = inference.upscale_picture(backend, lr)
  assert up.alpha.shape == (24, 30)
  expected_up = np.clip(np.round(imresize_np(lr.alpha, 2)), 0, 255)
  assert np.abs(up.alpha.astype(int) - expected_up).max() <= 1


def test_16_bit_is_processed_at_8_bits_and_written_at_16(backend, tmp_path):
  rgba = photo(18, 22, seed=5, channels=4, dtype=np.uint16)
  images.write_image(tmp_path / "d.png", rgba)
  pic = inference.Picture.read(tmp_path / "d.png")
  assert pic.bit_depth == 16 and pic.rgb.dtype == np.uint8 and pic.alpha.dtype == np.uint16
  lr = inference.downscale_picture(backend, pic)
  out = lr.file_array()
  assert out.dtype == np.uint16 and out.shape == (9, 11, 4)
  np.testing.assert_array_equal(out[:, :, :3], inference.downscale_rgb(
      backend, images.to_uint8(rgba[:, :, :3])).astype(np.uint16) * 257)
  # Alpha keeps 16 bits through the bicubic.
  assert np.abs(out[:, :, 3].astype(int) - imresize_np(rgba[:, :, 3], 0.5)).max() <= 1


def test_image_quality_equals_the_evaluation_metrics_in_strips():
  hr = photo(203, 157, seed=6)
  sr = np.clip(hr.astype(int) + np.random.default_rng(0).integers(-9, 10, hr.shape), 0, 255)
  sr = sr.astype(np.uint8)
  expected = psnr_ssim.psnr_y(hr, sr, 2), psnr_ssim.ssim_y(hr, sr, 2)
  for strip in (1 << 20, 3000, 11 * 153):
    p, s = inference.image_quality(hr, sr, 2, strip_pixels=strip)
    assert p == pytest.approx(expected[0], abs=1e-9)
    assert s == pytest.approx(expected[1], abs=1e-12)
  assert inference.image_quality(hr, hr, 2) == (math.inf, 1.0)
  p, s = inference.image_quality(hr[:14, :15], sr[:14, :15], 2)
  assert math.isfinite(p) and math.isnan(s)


# ---- many files, safely --------------------------------------------------------------------------

def test_collect_inputs_expands_files_folders_and_globs(tmp_path):
  for rel in ("a.png", "sub/b.png", "sub/deep/c.jpg", "notes.txt"):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes(b"x")
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "a.png").write_bytes(b"x")
  jobs, failures = inference.collect_inputs(
      [str(tmp_path / "sub"), str(tmp_path / "*.png"), str(tmp_path / "a.png"),
       str(tmp_path / "other" / "a.png"), str(tmp_path / "missing.png"), str(tmp_path / "*.gif")])
  assert [(j.source.name, str(j.name)) for j in jobs] == [
      ("b.png", "b.png"), ("c.jpg", "deep/c.jpg"), ("a.png", "a.png"), ("a.png", "a.png")]
  errors = [f.error for f in failures]
  assert len(errors) == 2
  assert any(e.endswith("missing.png: no such file or folder") for e in errors)
  assert any("*.gif: no file matches" in e for e in errors)
  # The two a.png are told apart by where their outputs go, not here: see check_targets.
  with pytest.raises(inference.TargetClash, match="other"):
    inference.check_targets("downscale", jobs, tmp_path / "out")


def _run(backend, command, sources, out, **kwargs):
  jobs, failures = inference.collect_inputs([str(s) for s in sources])
  return failures + list(inference.rescale_files(command, backend, jobs, out, **kwargs))


def test_bad_files_are_reported_and_the_others_processed(backend, tmp_path):
  images.write_image(tmp_path / "good.png", photo(16, 18))
  (tmp_path / "text.png").write_text("hello")
  data = images.encode("t.png", photo(40, 40))
  (tmp_path / "truncated.png").write_bytes(data[:len(data) // 2])
  results = _run(backend, "downscale", [tmp_path / "text.png", tmp_path / "truncated.png",
                                        tmp_path / "good.png", tmp_path / "gone.png"],
                 tmp_path / "out")
  errors = {r.source.name: r.error for r in results}
  assert errors["good.png"] is None
  assert "text.png" in errors["text.png"] and "not a readable image" in errors["text.png"]
  assert "truncated.png" in errors["truncated.png"]
  assert "gone.png" in errors["gone.png"]
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_existing_outputs_are_kept_unless_overwrite(backend, tmp_path):
  images.write_image(tmp_path / "in" / "a.png", photo(16, 18))
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "a.png").write_bytes(b"precious")
  [r] = _run(backend, "downscale", [tmp_path / "in"], tmp_path / "out")
  assert "exists" in r.error and "--overwrite" in r.error
  assert (tmp_path / "out" / "a.png").read_bytes() == b"precious"
  [r] = _run(backend, "downscale", [tmp_path / "in"], tmp_path / "out", overwrite=True)
  assert r.error is None and images.decode(tmp_path / "out" / "a.png").rgb.shape == (8, 9, 3)


def test_inputs_are_never_overwritten(backend, tmp_path):
  images.write_image(tmp_path / "a.png", photo(16, 18))
  before = (tmp_path / "a.png").read_bytes()
  [r] = _run(backend, "upscale", [tmp_path / "a.png"], tmp_path, overwrite=True)
  assert "is an input" in r.error
  assert (tmp_path / "a.png").read_bytes() == before


def test_unwritable_output_folder_is_reported(backend, tmp_path):
  # Tests run as root, where a read-only folder still takes writes: an output "folder" below a
  # regular file cannot be created by anyone.
  images.write_image(tmp_path / "a.png", photo(16, 18))
  (tmp_path / "file").write_text("x")
  [r] = _run(backend, "downscale", [tmp_path / "a.png"], tmp_path / "file" / "out")
  assert "a.png" in r.error and "cannot create output folder" in r.error


def test_an_interrupted_write_leaves_no_file(backend, tmp_path, monkeypatch):
  images.write_image(tmp_path / "a.png", photo(16, 18))

  def interrupt(*args):
    raise KeyboardInterrupt

  monkeypatch.setattr(os, "replace", interrupt)
  with pytest.raises(KeyboardInterrupt):
    _run(backend, "downscale", [tmp_path / "a.png"], tmp_path / "out")
  assert not (tmp_path / "out").exists()  # nor the folder made for it


def test_roundtrip_equals_upscale_of_the_downscaled_files(backend, tmp_path):
  src = tmp_path / "in"
  images.write_image(src / "rgb.png", photo(23, 35, seed=7))
  images.write_image(src / "gray.png", photo(19, 17, seed=8, channels=1)[:, :, 0])
  images.write_image(src / "rgba.png", photo(26, 21, seed=9, channels=4))
  images.write_image(src / "deep.png", photo(15, 28, seed=10, dtype=np.uint16))
  assert all(r.error is None for r in _run(backend, "downscale", [src], tmp_path / "lr"))
  assert all(r.error is None for r in _run(backend, "upscale", [tmp_path / "lr"], tmp_path / "hr"))
  results = _run(backend, "roundtrip", [src], tmp_path / "rt", lr_dir=tmp_path / "rtlr")
  assert all(r.error is None and math.isfinite(r.psnr) for r in results)
  for name in ("rgb.png", "gray.png", "rgba.png", "deep.png"):
    original, rt = images.decode(src / name), images.decode(tmp_path / "rt" / name)
    assert rt.rgb.shape == original.rgb.shape and rt.gray == original.gray
    assert rt.bit_depth == original.bit_depth and (rt.alpha is None) == (original.alpha is None)
    for a, b in ((tmp_path / "rt", tmp_path / "hr"), (tmp_path / "rtlr", tmp_path / "lr")):
      assert (a / name).read_bytes() == (b / name).read_bytes()


def test_clashing_targets_are_refused_before_anything_is_written(backend, tmp_path):
  images.write_image(tmp_path / "in" / "a.png", photo(16, 18))
  jobs, _ = inference.collect_inputs([str(tmp_path / "in")])
  with pytest.raises(inference.TargetClash, match="the HR of .* and the LR of .*a.png"):
    next(inference.rescale_files("roundtrip", backend, jobs, tmp_path / "out",
                                 lr_dir=tmp_path / "out" / ".", overwrite=True))
  assert not (tmp_path / "out").exists()


def test_upscale_refuses_a_picture_recorded_for_another_scale(backend, tmp_path):
  lr = inference.downscale_picture(backend, inference.Picture(photo(16, 18)))
  assert lr.scale == 2
  (tmp_path / "lr.png").write_bytes(inference.encode_picture(tmp_path / "lr.png", lr, scale=2))
  assert inference.Picture.read(tmp_path / "lr.png").scale == 2
  x4 = KerasBackend(tiny_model(seed=3, scale=4))
  with pytest.raises(ValueError, match=r"an x2 model \(fgrn:scale=2\), but the model is x4"):
    inference.upscale_picture(x4, lr)
  assert inference.scale_mismatch(tmp_path / "lr.png", 2) is None
  assert "x2" in inference.scale_mismatch(tmp_path / "lr.png", 4)
  [r] = _run(x4, "upscale", [tmp_path / "lr.png"], tmp_path / "out")
  assert r.error == f"{tmp_path / 'lr.png'}: made by an x2 model (fgrn:scale=2), but the model " \
      f"is x4; upscale it with an x2 model"
  assert not (tmp_path / "out").exists()


def test_write_errors_name_the_target_not_the_temporary_file(backend, tmp_path, monkeypatch):
  images.write_image(tmp_path / "a.png", photo(16, 18))

  def fail(tmp, target):  # an OSError whose text is all paths, as some file systems raise
    raise OSError(f"cannot rename {tmp} to {target}")

  monkeypatch.setattr(os, "replace", fail)
  [r] = _run(backend, "downscale", [tmp_path / "a.png"], tmp_path / "out")
  assert r.error.startswith(f"{tmp_path / 'a.png'}: cannot write {tmp_path / 'out' / 'a.png'} (")
  assert ".tmp" not in r.error


def test_unreadable_input_is_one_error_not_an_exception(backend, tmp_path, monkeypatch):
  images.write_image(tmp_path / "a.png", photo(16, 18))

  def denied(path):
    raise PermissionError(13, "Permission denied", str(path))

  monkeypatch.setattr(images, "decode", denied)
  [r] = _run(backend, "downscale", [tmp_path / "a.png"], tmp_path / "out")
  assert r.error == f"{tmp_path / 'a.png'}: cannot read (Permission denied)"


def test_roundtrip_whose_lr_cannot_be_written_keeps_no_hr(backend, tmp_path, monkeypatch):
  images.write_image(tmp_path / "in" / "a.png", photo(16, 18))
  real = images.write_atomic

  def no_space_for_lr(path, data, overwrite=False):
    if "lr" in pathlib.Path(path).parts:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(path, data, overwrite=overwrite)

  monkeypatch.setattr(images, "write_atomic", no_space_for_lr)
  [r] = _run(backend, "roundtrip", [tmp_path / "in"], tmp_path / "hr", lr_dir=tmp_path / "lr")
  assert r.error == (f"{tmp_path / 'in' / 'a.png'}: cannot write {tmp_path / 'lr' / 'a.png'} "
                     f"(No space left on device)")
  assert not (tmp_path / "hr").exists() and not (tmp_path / "lr").exists()


def test_preflight_refuses_what_needs_no_model(tmp_path):
  images.write_image(tmp_path / "in" / "good.png", photo(8, 8))
  images.write_image(tmp_path / "in" / "taken.png", photo(8, 8))
  (tmp_path / "in" / "text.png").write_text("hello")
  (tmp_path / "in" / "empty.png").write_bytes(b"")
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "taken.png").write_bytes(b"precious")
  jobs, _ = inference.collect_inputs([str(tmp_path / "in")])
  passed, failures = inference.preflight("downscale", jobs, tmp_path / "out")
  assert [j.source.name for j in passed] == ["good.png"]
  errors = sorted(f.error.split(": ", 1)[1] for f in failures)
  assert errors == ["empty file", "not a readable image (corrupt, truncated or unknown format)",
                    f"output {tmp_path / 'out' / 'taken.png'} exists (pass --overwrite to "
                    f"replace it)"]
  assert not (tmp_path / "out" / "good.png").exists()  # checks make nothing
