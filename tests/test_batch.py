"""fgrn_tf/batch.py: many files at once, bad ones reported by name, outputs written safely."""

import errno
import math
import os
import pathlib

import numpy as np
import pytest
from helpers import photo, tiny_model

from fgrn_tf import files
from fgrn_tf.data import images
from fgrn_tf.rescale import batch, picture
from fgrn_tf.runtime.backends import KerasBackend


@pytest.fixture(scope="module")
def backend():
  return KerasBackend(tiny_model(seed=3))


def _run(backend, command, sources, out, **kwargs):
  jobs, failures = batch.collect_inputs([str(s) for s in sources])
  return failures + list(batch.rescale_files(command, backend, jobs, out, **kwargs))


def test_collect_inputs_expands_files_folders_and_globs(tmp_path):
  for rel in ("a.png", "sub/b.png", "sub/deep/c.jpg", "notes.txt"):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes(b"x")
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "a.png").write_bytes(b"x")
  jobs, failures = batch.collect_inputs(
      [str(tmp_path / "sub"), str(tmp_path / "*.png"), str(tmp_path / "a.png"),
       str(tmp_path / "other" / "a.png"), str(tmp_path / "missing.png"), str(tmp_path / "*.gif")])
  assert [(j.source.name, str(j.name)) for j in jobs] == [
      ("b.png", "b.png"), ("c.jpg", "deep/c.jpg"), ("a.png", "a.png"), ("a.png", "a.png")]
  errors = [f.error for f in failures]
  assert len(errors) == 2
  assert any(e.endswith("missing.png: no such file or folder") for e in errors)
  assert any("*.gif: no file matches" in e for e in errors)
  # The two a.png are told apart by where their outputs go, not here: see check_targets.
  with pytest.raises(batch.TargetClash, match="other"):
    batch.check_targets("downscale", jobs, tmp_path / "out")


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
  jobs, _ = batch.collect_inputs([str(tmp_path / "in")])
  with pytest.raises(batch.TargetClash, match="the HR of .* and the LR of .*a.png"):
    next(batch.rescale_files("roundtrip", backend, jobs, tmp_path / "out",
                             lr_dir=tmp_path / "out" / ".", overwrite=True))
  assert not (tmp_path / "out").exists()


def test_upscale_refuses_an_lr_file_recorded_for_another_scale(backend, tmp_path):
  lr = picture.downscale_picture(backend, picture.Picture(photo(16, 18)))
  (tmp_path / "lr.png").write_bytes(picture.encode_picture(tmp_path / "lr.png", lr, scale=2))
  x4 = KerasBackend(tiny_model(seed=3, scale=4))
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
  real = files.write_bytes

  def no_space_for_lr(path, data, overwrite=True):
    if "lr" in pathlib.Path(path).parts:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(path, data, overwrite=overwrite)

  monkeypatch.setattr(files, "write_bytes", no_space_for_lr)
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
  jobs, _ = batch.collect_inputs([str(tmp_path / "in")])
  passed, failures = batch.preflight("downscale", jobs, tmp_path / "out")
  assert [j.source.name for j in passed] == ["good.png"]
  errors = sorted(f.error.split(": ", 1)[1] for f in failures)
  assert errors == ["empty file", "not a readable image (corrupt, truncated or unknown format)",
                    f"output {tmp_path / 'out' / 'taken.png'} exists (pass --overwrite to "
                    f"replace it)"]
  assert not (tmp_path / "out" / "good.png").exists()  # checks make nothing
