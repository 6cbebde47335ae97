"""One way to find and open a model: every tool (fgrn, fgrn-eval, fgrn-export) follows the
rules of `fgrn_tf.runtime.resolve` and refuses the same mistakes in the same words."""

import numpy as np
import pytest
from helpers import write_model_dir

from fgrn_tf import config, workdir
from fgrn_tf.cli import entry
from fgrn_tf.data import images
from fgrn_tf.errors import UsageError, one_line
from fgrn_tf.evaluate import evaluator
from fgrn_tf.export import exporter
from fgrn_tf.models import receptive_field
from fgrn_tf.rescale import commands
from fgrn_tf.runtime import backends, resolve, shipped


@pytest.fixture()
def photos(tmp_path):
  rng = np.random.default_rng(0)
  images.write_image(tmp_path / "in" / "a.png", rng.integers(0, 256, (24, 24, 3), np.uint8))
  return tmp_path / "in"


def _refusals(model, scale, tmp_path, photos, capsys) -> dict[str, str]:
  """The one line each tool says for `model` at `scale` (fgrn: with its exit code 2)."""
  said = {}
  try:
    evaluator.fgrn_method(model, scale)
  except UsageError as e:
    said["eval"] = one_line(e)
  try:
    exporter.export_path(model, tmp_path / "export", scale=scale)
  except UsageError as e:
    said["export"] = one_line(e)
  code = entry.guarded("fgrn", lambda argv: commands.run(
      "downscale", [str(photos)], model=model, scale=scale, output_dir=tmp_path / "o"))(["fgrn"])
  assert code == 2
  said["fgrn"] = capsys.readouterr().err.strip().removeprefix("fgrn: error: ")
  return said


def test_a_pair_is_two_tflite_files_for_every_tool(tmp_path, photos, capsys):
  for name in ("d.tflite", "u.tflite", "a.png", "b.png"):
    (tmp_path / name).write_bytes(b"")
  down, up = tmp_path / "d.tflite", tmp_path / "u.tflite"
  assert resolve.model_spec(f"{down}, {up}") == [down, up]
  with pytest.raises(UsageError, match="no such file or folder"):
    resolve.model_spec(f"{down},{tmp_path / 'missing.tflite'}")
  said = _refusals(f"{tmp_path / 'a.png'},{tmp_path / 'b.png'}", 2, tmp_path, photos, capsys)
  assert said["eval"] == said["export"] == said["fgrn"]
  assert "a pair is two .tflite files" in said["fgrn"]


def test_missing_shipped_model_is_told_the_same_by_every_tool(tmp_path, photos, capsys,
                                                              monkeypatch):
  monkeypatch.setattr(shipped, "default_model_path", lambda scale: tmp_path / f"none_x{scale}")
  said = _refusals(None, 4, tmp_path, photos, capsys)
  assert said["eval"] == said["export"] == said["fgrn"]
  assert f"no shipped model for x4 at {tmp_path / 'none_x4'}" in said["fgrn"]
  assert "--model" in said["fgrn"]


def test_scale_and_tile_are_refused_before_loading_in_every_tool(tmp_path, photos, capsys,
                                                                 monkeypatch):
  run = tmp_path / "run"
  workdir.write_experiment(run, config.x2())  # no weights: anything that loads would fail
  monkeypatch.setattr(backends, "load_backend", lambda *a, **k: pytest.fail("loaded"))
  said = _refusals(run, 4, tmp_path, photos, capsys)
  assert said["fgrn"] == f"model {run} is x2 but --scale 4 was asked for"
  assert said["eval"] == said["export"] == said["fgrn"]
  smallest = receptive_field.min_tile(2, config.x2().model)
  assert entry.guarded("fgrn", lambda argv: commands.run(
      "downscale", [str(photos)], model=run, output_dir=tmp_path / "o",
      tile=smallest - 1))(["fgrn"]) == 2
  assert f"use at least {smallest}," in capsys.readouterr().err


def test_the_smallest_tile_is_one_figure_before_and_after_loading(tmp_path):
  folder = write_model_dir(tmp_path / "m")
  peeked = resolve.peek(resolve.model_spec(folder))
  backend = resolve.open_model(resolve.model_spec(folder))
  assert peeked == (2, backend.model_config)
  assert receptive_field.min_tile(*peeked) == receptive_field.min_tile(
      backend.scale, receptive_field.model_config_of(backend))
  assert receptive_field.min_tile(2, None) == 2 * 3 * max(receptive_field.DEFAULT_MARGINS)


def test_a_bundled_models_name_works_wherever_a_path_does(tmp_path, photos, capsys,
                                                          monkeypatch):
  assert resolve.model_spec("codec_x2") == shipped.model_dir("codec_x2")
  assert resolve.peek(resolve.model_spec("codec_x4"))[0] == 4
  # Refused from the named model's record, before anything loads, in the tools' same words.
  monkeypatch.setattr(backends, "load_backend", lambda *a, **k: pytest.fail("loaded"))
  said = _refusals("codec_x4", 2, tmp_path, photos, capsys)
  assert said["eval"] == said["export"] == said["fgrn"]
  assert said["fgrn"] == f"model {shipped.model_dir('codec_x4')} is x4 but --scale 2 was asked for"


def test_an_unknown_name_is_one_line_listing_the_bundled_models(tmp_path, photos, capsys):
  said = _refusals("codec_x9", None, tmp_path, photos, capsys)
  assert said["eval"] == said["export"] == said["fgrn"]
  assert said["fgrn"] == (
      "--model codec_x9: no such file or folder, nor a bundled model (bundled: codec_x2, "
      "codec_x4, fgrn_x2, fgrn_x4, mobile_x2, mobile_x4; `fgrn models` describes them)")
  # A path (it has a folder in it) is not taken for a name.
  with pytest.raises(UsageError) as caught:
    resolve.model_spec(str(tmp_path / "codec_x2"))
  assert str(caught.value) == f"--model {tmp_path / 'codec_x2'}: no such file or folder"


def test_a_path_that_exists_wins_over_a_name(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  write_model_dir(tmp_path / "fgrn_x4")  # an x2 workdir that happens to bear a bundled name
  spec = resolve.model_spec("fgrn_x4")
  assert spec.resolve() == tmp_path / "fgrn_x4"
  assert resolve.peek(spec)[0] == 2
