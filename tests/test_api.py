"""The Python API (`fgrn_tf.load`): arrays and files through the tool's tiling, codecs and
checks, and the tool's one-line errors. One bundled model (mobile_x2, the smallest) is loaded
once for the module."""

import re

import numpy as np
import pytest
from helpers import photo

import fgrn_tf
from fgrn_tf import api
from fgrn_tf.data import codecs, images
from fgrn_tf.errors import FGRNError, UsageError
from fgrn_tf.models import receptive_field
from fgrn_tf.runtime import resolve, shipped


@pytest.fixture(scope="module")
def model():
  return fgrn_tf.load("mobile_x2")


@pytest.fixture(scope="module")
def hr():
  return photo(37, 50, seed=1)  # sides the scale does not divide


def test_the_public_face_loads_a_bundled_model_by_name(model):
  assert isinstance(model, fgrn_tf.Rescaler)
  assert model.model == shipped.model_dir("mobile_x2") and model.scale == 2
  assert model.backend.name == "keras"


def test_arrays_keep_their_form_and_the_hr_size(model, hr):
  lr = model.downscale(hr)
  assert lr.shape == (19, 25, 3) and lr.dtype == np.uint8
  assert model.upscale(lr).shape == (38, 50, 3)
  sr = model.upscale(lr, size=(37, 50))
  assert sr.shape == hr.shape
  assert (model.roundtrip(hr) == sr).all()
  # A batch is the images one by one, stacked.
  pair = np.stack([hr, hr[::-1]])
  lrs = model.downscale(pair)
  assert lrs.shape == (2, 19, 25, 3)
  assert (lrs[0] == lr).all() and (lrs[1] == model.downscale(hr[::-1])).all()
  assert (model.roundtrip(pair)[1] == model.roundtrip(hr[::-1])).all()


def test_images_above_the_tile_go_through_in_bounded_windows(model):
  tile = receptive_field.min_tile(2, model.backend.model_config)
  tiled = api.Rescaler(model.backend, model.model, tile=tile)
  seen = []
  down = model.backend.downscale
  tiled.backend = type("Spy", (), {"scale": 2, "model_config": model.backend.model_config,
                                   "downscale": lambda self, x: seen.append(x.shape) or down(x),
                                   "upscale": lambda self, x: model.backend.upscale(x)})()
  hr = photo(3 * tile, 2 * tile + 10, seed=2)
  out = tiled.roundtrip(hr)
  assert len(seen) > 4 and max(max(s[1:3]) for s in seen) <= tile
  whole = api.Rescaler(model.backend, model.model, tile=0).roundtrip(hr)
  assert np.abs(out.astype(int) - whole).max() <= 1


def test_a_codec_stores_the_lr_as_its_decoder_gives_it_back(model, hr):
  jpeg = codecs.parse("jpeg:75")
  lr = model.downscale(hr)
  decoded = jpeg.decode(jpeg.encode(lr))
  assert (model.downscale(hr, codec="jpeg:75") == decoded).all()
  through = model.roundtrip(hr, codec="jpeg:75")
  assert (through == model.upscale(decoded, size=hr.shape[:2])).all()
  assert not (through == model.roundtrip(hr)).all()
  assert (model.roundtrip(hr, codec="png") == model.roundtrip(hr)).all()


def test_files_in_paths_out_as_the_tool_writes_them(model, hr, tmp_path):
  src = tmp_path / "in" / "photo.png"
  images.write_image(src, hr)
  written = model.roundtrip(src, tmp_path / "out", lr_dir=tmp_path / "lr")
  assert written == [tmp_path / "out" / "photo.png", tmp_path / "lr" / "photo.png"]
  assert (images.read_rgb8(written[0]) == model.roundtrip(hr)).all()
  # The PNG LR records the HR size: upscaling the file gives the HR's size back.
  (up,) = model.upscale(str(tmp_path / "lr" / "*.png"), tmp_path / "up")
  assert images.read_rgb8(up).shape == hr.shape
  (small,) = model.downscale([tmp_path / "in"], tmp_path / "small", codec="webp:80")
  assert small == tmp_path / "small" / "photo.webp"


def test_file_problems_are_found_before_anything_is_written(model, hr, tmp_path):
  images.write_image(tmp_path / "a.png", hr)
  with pytest.raises(api.FilesError) as caught:
    model.downscale([tmp_path / "a.png", tmp_path / "missing.png"], tmp_path / "out")
  assert caught.value.failures == [f"{tmp_path / 'missing.png'}: no such file or folder"]
  assert not (tmp_path / "out").exists()
  model.downscale(tmp_path / "a.png", tmp_path / "out")
  with pytest.raises(api.FilesError, match="exists"):
    model.downscale(tmp_path / "a.png", tmp_path / "out")
  assert model.downscale(tmp_path / "a.png", tmp_path / "out", overwrite=True)
  with pytest.raises(UsageError, match="needs an output_dir"):
    model.downscale(tmp_path / "a.png")


def test_errors_are_fgrn_errors_with_the_tools_lines(model, hr):
  for call, says in [
      (lambda: model.downscale(hr.astype(np.float32)), "downscale input must be uint8"),
      (lambda: model.upscale(hr[None, None]), "upscale input must be uint8 [H, W, 3]"),
      (lambda: model.downscale(hr[:1, :1]), "1x1 is smaller than the scale 2"),
      (lambda: model.roundtrip(hr, codec="jpeg:900"), "quality must be an integer in 1..100"),
      (lambda: model.downscale([hr, hr]), "give a uint8 NumPy array or image file paths"),
  ]:
    with pytest.raises(FGRNError, match=re.escape(says)):
      call()
  with pytest.raises(UsageError) as from_api:
    fgrn_tf.load("codec_x9")
  with pytest.raises(UsageError) as from_tools:
    resolve.model_spec("codec_x9")
  assert str(from_api.value) == str(from_tools.value)
  with pytest.raises(UsageError, match="--tile 8 is too small for this model"):
    fgrn_tf.load("mobile_x2", tile=8)
  with pytest.raises(UsageError, match="is x2 but --scale 4 was asked for"):
    fgrn_tf.load("mobile_x2", scale=4)


def test_bundled_models_are_described_as_fgrn_models_lists_them():
  found = {m.name: m for m in fgrn_tf.bundled_models()}
  assert set(found) == {"fgrn_x2", "fgrn_x4", "codec_x2", "codec_x4", "mobile_x2", "mobile_x4"}
  assert found["mobile_x4"].scale == 4 and found["mobile_x4"].path == shipped.model_dir("mobile_x4")
