"""fgrn_tf/picture.py: odd sizes, the recorded HR size and scale, gray, alpha and 16 bits."""

import math

import numpy as np
import pytest
from helpers import photo, tiny_model

from fgrn_tf.data import images, pngtext
from fgrn_tf.data.imresize import imresize_np
from fgrn_tf.rescale import picture, tiling
from fgrn_tf.rescale.picture import Picture
from fgrn_tf.runtime.backends import KerasBackend


@pytest.fixture(scope="module")
def backend():
  return KerasBackend(tiny_model(seed=3))


@pytest.mark.parametrize("h,w", [(37, 51), (20, 31), (8, 9)])
def test_odd_sizes_downscale_to_ceil_and_round_trip_to_the_input_size(backend, h, w):
  hr = Picture(photo(h, w))
  lr = picture.downscale_picture(backend, hr)
  assert lr.rgb.shape == (math.ceil(h / 2), math.ceil(w / 2), 3)
  assert lr.hr_size == (h, w)
  assert picture.upscale_picture(backend, lr).rgb.shape == (h, w, 3)
  # Without the recorded size the upscale is s*h x s*w.
  bare = picture.upscale_picture(backend, Picture(lr.rgb))
  assert bare.rgb.shape == (2 * lr.rgb.shape[0], 2 * lr.rgb.shape[1], 3)


def test_png_lr_records_the_hr_size_and_upscale_crops_to_it(backend, tmp_path):
  hr = Picture(photo(37, 51))
  lr = picture.downscale_picture(backend, hr)
  (tmp_path / "lr.png").write_bytes(picture.encode_picture(tmp_path / "lr.png", lr, scale=2))
  assert pngtext.read_text(tmp_path / "lr.png") == {"fgrn:hr-size": "37x51", "fgrn:scale": "2"}
  back = Picture.read(tmp_path / "lr.png")
  np.testing.assert_array_equal(back.rgb, lr.rgb)
  assert back.hr_size == (37, 51)
  assert picture.upscale_picture(backend, back).rgb.shape == (37, 51, 3)
  # A record that does not fit the LR size (another scale, an edited image) is ignored.
  wrong = Picture(lr.rgb, hr_size=(80, 51))
  assert picture.upscale_picture(backend, wrong).rgb.shape == (38, 52, 3)


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
  pic = Picture.read(tmp_path / "g.png")
  lr = picture.downscale_picture(backend, pic)
  assert lr.file_array().shape == (11, 15)
  expected = np.round(tiling.downscale_rgb(backend, np.repeat(gray[:, :, None], 3, 2))
                      .mean(axis=2)).astype(np.uint8)
  np.testing.assert_array_equal(lr.file_array(), expected)


def test_alpha_is_resized_with_matlab_bicubic_and_reattached(backend):
  rgba = photo(24, 30, seed=4, channels=4)
  hr = Picture(rgba[:, :, :3], alpha=rgba[:, :, 3])
  lr = picture.downscale_picture(backend, hr)
  expected = np.clip(np.round(imresize_np(rgba[:, :, 3], 0.5)), 0, 255)
  assert np.abs(lr.alpha.astype(int) - expected).max() <= 1  # float32 TF op vs float64 numpy
  out = lr.file_array()
  assert out.shape == (12, 15, 4)
  np.testing.assert_array_equal(out[:, :, :3], tiling.downscale_rgb(backend, rgba[:, :, :3]))
  up = picture.upscale_picture(backend, lr)
  assert up.alpha.shape == (24, 30)
  expected_up = np.clip(np.round(imresize_np(lr.alpha, 2)), 0, 255)
  assert np.abs(up.alpha.astype(int) - expected_up).max() <= 1


def test_16_bit_is_processed_at_8_bits_and_written_at_16(backend, tmp_path):
  rgba = photo(18, 22, seed=5, channels=4, dtype=np.uint16)
  images.write_image(tmp_path / "d.png", rgba)
  pic = Picture.read(tmp_path / "d.png")
  assert pic.bit_depth == 16 and pic.rgb.dtype == np.uint8 and pic.alpha.dtype == np.uint16
  lr = picture.downscale_picture(backend, pic)
  out = lr.file_array()
  assert out.dtype == np.uint16 and out.shape == (9, 11, 4)
  np.testing.assert_array_equal(out[:, :, :3], tiling.downscale_rgb(
      backend, images.to_uint8(rgba[:, :, :3])).astype(np.uint16) * 257)
  # Alpha keeps 16 bits through the bicubic.
  assert np.abs(out[:, :, 3].astype(int) - imresize_np(rgba[:, :, 3], 0.5)).max() <= 1


def test_upscale_refuses_a_picture_recorded_for_another_scale(backend, tmp_path):
  lr = picture.downscale_picture(backend, Picture(photo(16, 18)))
  assert lr.scale == 2
  (tmp_path / "lr.png").write_bytes(picture.encode_picture(tmp_path / "lr.png", lr, scale=2))
  assert Picture.read(tmp_path / "lr.png").scale == 2
  x4 = KerasBackend(tiny_model(seed=3, scale=4))
  with pytest.raises(ValueError, match=r"an x2 model \(fgrn:scale=2\), but the model is x4"):
    picture.upscale_picture(x4, lr)
  assert picture.scale_mismatch(tmp_path / "lr.png", 2) is None
  assert "x2" in picture.scale_mismatch(tmp_path / "lr.png", 4)
