"""MATLAB bicubic: the numpy port against MATLAB ($FGRN_SHARED/reference), and the TF ops
against numpy."""

import numpy as np
import pytest

from fgrn_tf.data.imresize import bicubic_downscale, bicubic_upscale, imresize_np

N_CASES = 7


@pytest.fixture(scope="module")
def cases(shared_dir):
  with np.load(shared_dir / "reference" / "matlab_bicubic_cases.npz") as data:
    return {k: data[k] for k in data.files}


@pytest.mark.parametrize("k", range(N_CASES))
def test_imresize_np_matches_matlab_reference(cases, k):
  image, scale = cases[f"case{k}_input"], float(cases[f"case{k}_scale"])
  expected = cases[f"case{k}_output"]
  out = imresize_np(image, scale)
  assert out.shape == expected.shape  # ceil(size * scale), also for odd sizes and 7x9
  np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)


# Cases with integer factors and sizes the TF ops take (0 and 6 have odd sizes at 1/2).
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_tf_ops_match_numpy_port(cases, k):
  image, scale = cases[f"case{k}_input"], float(cases[f"case{k}_scale"])
  if scale < 1:
    factor = round(1 / scale)
    assert image.shape[0] % factor == 0 and image.shape[1] % factor == 0
    out = bicubic_downscale(image[None].astype(np.float32), factor)
  else:
    out = bicubic_upscale(image[None].astype(np.float32), int(scale))
  np.testing.assert_allclose(np.asarray(out)[0], imresize_np(image, scale), rtol=0, atol=2e-3)


def test_downscale_of_constant_image_is_constant():
  image = np.full((12, 16, 3), 77.0, np.float32)
  np.testing.assert_allclose(imresize_np(image, 0.5), 77.0, atol=1e-9)
  np.testing.assert_allclose(np.asarray(bicubic_downscale(image[None], 2)), 77.0, atol=1e-3)


def test_output_size_is_ceil_of_scaled_size():
  assert imresize_np(np.zeros((7, 9)), 0.5).shape == (4, 5)
  assert imresize_np(np.zeros((33, 45, 3)), 1 / 3).shape == (11, 15, 3)
