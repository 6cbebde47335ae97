"""PIQE as MATLAB's `piqe`, against the independent `pypiqe` port (a test-only peer)."""

import numpy as np
import pytest
from pypiqe import piqe as pypiqe

from fgrn_tf.data.images import read_rgb8
from fgrn_tf.metrics.piqe import piqe


def _scene(h, w, seed=0, noise=4.0):
  """uint8 gray image with edges, smooth parts and texture, max exactly 255."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  img = 110 + 70 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 60 * ((xx // 24 + yy // 20) % 2)
  img = img + rng.normal(0, noise, (h, w))
  img = np.clip(np.round(img), 0, 255).astype(np.uint8)
  img[0, 0] = 255
  return img


def _pad16(img):
  return np.pad(img, ((0, -img.shape[0] % 16), (0, -img.shape[1] % 16)), mode="edge")


@pytest.mark.parametrize("seed,h,w,noise", [(0, 96, 128, 4.0), (1, 160, 112, 12.0),
                                            (2, 64, 64, 0.0)])
def test_matches_pypiqe_on_synthetic_images(seed, h, w, noise):
  img = _scene(h, w, seed, noise)
  ours, theirs = piqe(img), pypiqe(img)[0]
  assert ours == pytest.approx(theirs, rel=1e-3)


def test_matches_pypiqe_on_shared_images(data_root):
  for path, channel in (("Set5/baby.png", 1), ("Set14/bridge.png", 0)):
    img = read_rgb8(data_root / path)[:, :, channel]
    assert img.max() == 255
    assert piqe(img) == pytest.approx(pypiqe(img)[0], rel=1e-3), path


def test_pads_by_replication_like_matlab():
  # MATLAB pads to a multiple of 16 with 'replicate' ('post'); pypiqe uses 'symmetric', so it
  # agrees with MATLAB once the image is already padded.
  img = _scene(100, 70, seed=3, noise=6.0)
  assert piqe(img) == pytest.approx(pypiqe(_pad16(img))[0], rel=1e-3)


def test_does_not_stretch_contrast_like_matlab():
  # MATLAB uses round(255 * im2double(I)); pypiqe divides by the image maximum first.
  img = (_scene(96, 96, seed=4, noise=6.0).astype(np.float64) * 0.8).round().astype(np.uint8)
  stretched = np.round(255 * img.astype(np.float64) / img.max()).astype(np.uint8)
  assert piqe(stretched) == pytest.approx(pypiqe(img)[0], rel=1e-3)


def test_float_input_is_read_as_0_to_1():
  img = _scene(64, 80, seed=5)
  assert piqe(img.astype(np.float64) / 255) == pytest.approx(piqe(img), abs=1e-12)


def test_flat_image_scores_100():
  assert piqe(np.full((64, 64), 90, np.uint8)) == 100.0


def test_noise_scores_worse_on_a_photo(data_root):
  clean = read_rgb8(data_root / "Set5" / "baby.png")[128:384, 128:384, 1]
  rng = np.random.default_rng(0)
  noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
  assert piqe(noisy) > piqe(clean) + 10
