"""Shipping a run as a bundled model: half-precision weights, float16 TFLite halves, size limit."""

import errno
import json
import os
import stat
import subprocess
import sys
import types

import forked_tools
import h5py
import numpy as np
import pytest
from conftest import ROOT
from helpers import REFUSED_OUTPUTS, make_run, refusal_tree, snapshot, split_importtime, wave_images

from fgrn_tf import workdir
from fgrn_tf.data import images
from fgrn_tf.export import ExportError, manifest, shipper
from fgrn_tf.runtime import backends

pytestmark = pytest.mark.slow  # two TFLite conversions of a tiny model, ~30 s


def fake_shipped(path, extra=None):
  """A folder as an earlier `ship` left it, with its hand-written model card."""
  (path / "export" / "tflite" / "float16").mkdir(parents=True)
  (path / "export" / "tflite" / "float16" / "upscaler.tflite").write_bytes(b"tflite")
  (path / "export" / "manifest.json").write_text(json.dumps(
      {"format": manifest.MANIFEST_FORMAT, "model_name": "fgrn_x2", "version": 1,
       "artifacts": {}}))
  (path / "config.json").write_text("{}")
  (path / workdir.BEST_WEIGHTS).write_bytes(b"old weights")
  (path / "MODEL_CARD.md").write_text("# FGRN x2, written by hand\n")
  if extra:
    (path / extra).write_text("mine")


def check_images():
  return [(f"w{i}", (255 * im).astype(np.uint8)) for i, im in enumerate(wave_images(2, 32, 40))]


def float_dtypes(path):
  with h5py.File(path, "r") as f:
    found = set()
    f.visititems(lambda _, o: found.add(o.dtype.name) if isinstance(o, h5py.Dataset)
                 and o.dtype.kind == "f" else None)
  return found


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
  # Shipped over an earlier shipped model, under the umask a release job usually has.
  base = tmp_path_factory.mktemp("ship")
  run, dest = base / "run", base / "models" / "fgrn_x2"
  make_run(run)
  fake_shipped(dest)
  lines = []
  umask = os.umask(0o022)
  try:
    shipper.ship(run, dest, check_images(), log=lines.append)
  finally:
    os.umask(umask)
  return types.SimpleNamespace(run=run, dest=dest, lines=lines)


def test_shipped_model_loads_like_a_workdir_and_matches_the_run(shipped):
  run, dest, lines = shipped.run, shipped.dest, shipped.lines
  assert float_dtypes(dest / workdir.BEST_WEIGHTS) == {"float16"}
  assert float_dtypes(run / workdir.BEST_WEIGHTS) == {"float32"}
  assert (dest / "train_state.json").read_text() == '{"step": 6}'
  assert any(line.startswith("half-precision weights") for line in lines)
  hr = check_images()[0][1][None]
  full, kept = backends.load_backend(run), backends.load_backend(dest)
  assert isinstance(kept, backends.KerasBackend)
  lr_full, lr_shipped = full.downscale(hr), kept.downscale(hr)
  assert np.abs(lr_full.astype(int) - lr_shipped.astype(int)).max() <= 2
  lite = backends.load_backend(dest / shipper.EXPORT_SUBDIR, artifact="tflite_float16")
  assert np.abs(lite.downscale(hr).astype(int) - lr_shipped.astype(int)).max() <= 2
  assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_reshipping_keeps_the_hand_written_model_card(shipped):
  assert (shipped.dest / "MODEL_CARD.md").read_text() == "# FGRN x2, written by hand\n"
  assert any("MODEL_CARD.md" in line for line in shipped.lines)
  assert not (shipped.dest / "export" / "tflite" / "float16" / "upscaler.tflite").read_bytes() \
      .startswith(b"tflite")  # the rest was replaced


def test_shipped_folder_follows_the_umask(shipped):
  # Under umask 022 a plain mkdir gives 0755 and open() 0644: staging folders made by
  # tempfile.mkdtemp are owner-only and must not end up shipped that way.
  found = [shipped.dest, *shipped.dest.rglob("*")]
  assert any(p.name == "downscaler.tflite" for p in found)
  for p in found:
    assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p


REFUSED = {case: (folder, word) for case, (folder, _, word) in REFUSED_OUTPUTS.items()} | {
    # case: (what dest is, a word the error must hold)
    "a_shipped_model_with_a_file_added": ("models/fgrn_x2", "notes.txt"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_ship_never_replaces_what_it_did_not_make(tmp_path, case):
  base = tmp_path / "base"
  refusal_tree(base, [image for _, image in check_images()])
  fake_shipped(base / "models" / "fgrn_x2", extra="notes.txt")
  before = snapshot(tmp_path)
  dest, word = REFUSED[case]
  with pytest.raises(ExportError, match=word) as info:
    shipper.ship(base / "run", base / dest, check_images(), log=lambda _: None)
  assert "\n" not in str(info.value)
  assert snapshot(tmp_path) == before


def test_ship_main_refuses_a_dest_that_is_the_check_dir(tmp_path):
  make_run(tmp_path / "run")
  for i, (_, image) in enumerate(check_images()):
    images.write_image(tmp_path / "check" / f"c{i}.png", image)
  before = snapshot(tmp_path)
  proc = subprocess.run(
      [sys.executable, "-X", "importtime", "export/ship_main.py", "--workdir",
       str(tmp_path / "run"), "--check_dir", str(tmp_path / "check"), "--dest",
       str(tmp_path / "check")],
      cwd=ROOT, capture_output=True, text=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=600)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  lines, imported = split_importtime(proc.stderr)
  errors = [line for line in lines if line.startswith("ship: error:")]
  assert len(errors) == 1 and "--check_dir" in errors[0], proc.stderr[-2000:]
  assert snapshot(tmp_path) == before
  # The paths are checked before TensorFlow's seconds of importing.
  assert "fgrn_tf.export.shipper" in imported and "tensorflow" not in imported


def test_a_full_disk_is_reported_on_dest_not_the_hidden_staging_folder(tmp_path, monkeypatch):
  def full_disk(src, dst):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

  monkeypatch.setattr(shipper, "half_precision_weights", full_disk)
  run, dest = tmp_path / "run", tmp_path / "models" / "fgrn_x2"
  make_run(run)
  with pytest.raises(ExportError) as info:
    shipper.ship(run, dest, check_images(), log=lambda _: None)
  assert str(info.value) == f"{dest / workdir.BEST_WEIGHTS}: {os.strerror(errno.ENOSPC)}"
  assert list(dest.parent.iterdir()) == []


def test_over_the_size_limit_keeps_the_model_already_shipped(tmp_path):
  run, dest = tmp_path / "run", tmp_path / "models" / "fgrn_x2"
  make_run(run)
  fake_shipped(dest)
  before = snapshot(dest)
  with pytest.raises(ExportError, match="over the 0 MB limit"):
    # The weights alone are over the limit too: no conversion needed to reach the refusal.
    shipper.ship(run, dest, check_images(), log=lambda _: None, size_limit=1000, formats=())
  assert [p.name for p in dest.parent.iterdir()] == ["fgrn_x2"]
  assert snapshot(dest) == before


def test_export_without_a_model_exports_the_shipped_model(tmp_path):
  from fgrn_tf.runtime.shipped import default_model_path

  shipped = default_model_path(2)
  if not shipped.is_dir():
    pytest.skip(f"no shipped model at {shipped}")
  out = tmp_path / "out"
  proc = forked_tools.run(
      [sys.executable, "export/export_main.py", "--output_dir", str(out), "--formats",
       "tflite_float16", "--check_images", "1", "--check_crop", "64"],
      cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["source"]["path"] == str(shipped.resolve())
  assert manifest["scale"] == 2
  # The paper-sized model ships its weights alone: the halves written from them are ready for
  # the GPU delegate, as the phone-sized models' shipped ones (test_gpu_delegate).
  files = manifest["artifacts"]["tflite_float16"]["files"]
  assert [f["gpu_delegate_issues"] for f in files.values()] == [[], []]


def test_weights_only_ship_loads_and_can_be_shipped_over(tmp_path):
  run, dest = tmp_path / "run", tmp_path / "models" / "fgrn_x2"
  make_run(run)
  shipper.ship(run, dest, check_images(), log=lambda _: None, formats=())
  assert sorted(p.name for p in dest.iterdir()) == ["best.weights.h5", "config.json", "export",
                                                    "train_state.json"]
  assert [p.name for p in (dest / "export").iterdir()] == ["manifest.json"]
  assert json.loads((dest / "export" / "manifest.json").read_text())["artifacts"] == {}
  assert shipper.not_a_shipped_model(dest) is None
  hr = check_images()[0][1][None]
  lr = backends.load_backend(dest).downscale(hr)
  assert np.abs(lr.astype(int) - backends.load_backend(run).downscale(hr).astype(int)).max() <= 2
  (dest / shipper.CARD_DIR).mkdir()
  (dest / shipper.CARD_DIR / "baby.png").write_bytes(b"picture")
  shipper.ship(run, dest, check_images(), log=lambda _: None, formats=())  # over itself
  assert (dest / shipper.CARD_DIR / "baby.png").read_bytes() == b"picture"


def test_ship_tool_refuses_an_unknown_format_in_one_line_before_writing(tmp_path):
  run = tmp_path / "run"
  make_run(run)
  tool = [sys.executable, "export/ship_main.py", "--model", str(run)]
  proc = forked_tools.run([*tool, "--output_dir", str(tmp_path / "bad"), "--formats", "nope"],
                          cwd=ROOT, timeout=300)
  assert proc.returncode != 0 and "unknown format(s) nope" in proc.stderr
  assert not (tmp_path / "bad").exists()
