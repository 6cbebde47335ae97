"""The real codecs between downscale and upscale: specs, bytes, pixels, reproducibility."""

import numpy as np
import pytest

from fgrn_tf.data import codecs


def photo_like(h=48, w=64, seed=0):
  """Smooth colour waves plus a little noise: compressible like a photo, not constant."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], -1)
  return np.clip(128 + 90 * base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("spec, match", [
    ("jpeg:0", "1..100"), ("jpeg:101", "1..100"), ("webp:-5", "1..100"),
    ("gif:5", "unknown codec 'gif:5'"), ("jpeg", "needs a quality"), ("png:5", "png is lossless"),
    ("jpeg:high", "not an integer"), ("", "unknown codec")])
def test_bad_specs_are_one_line_errors(spec, match):
  with pytest.raises(codecs.CodecError, match=match) as info:
    codecs.parse(spec)
  assert "\n" not in str(info.value)


def test_specs_parse_and_print_back():
  assert [c.spec for c in codecs.parse_list("jpeg:90, webp:90,png,JPG:75,jpeg:90")] == [
      "jpeg:90", "webp:90", "png", "jpeg:75"]
  with pytest.raises(codecs.CodecError, match="no codec"):
    codecs.parse_list(" , ")


def test_a_format_and_a_quality_given_apart_make_the_same_codec():
  assert codecs.from_format("jpeg", 80) == codecs.parse("jpeg:80")
  assert codecs.from_format("webp") == codecs.Codec("webp", codecs.DEFAULT_QUALITY)
  assert codecs.from_format("png") == codecs.PNG
  with pytest.raises(codecs.CodecError, match="png is lossless"):
    codecs.from_format("png", 90)
  with pytest.raises(codecs.CodecError, match="1..100"):
    codecs.from_format("jpeg", 0)


@pytest.mark.parametrize("spec", ["jpeg:90", "jpeg:50", "webp:90"])
def test_lossy_codecs_change_the_pixels_and_cost_fewer_bytes(spec):
  image = photo_like()
  decoded, size = codecs.parse(spec).roundtrip(image)
  assert decoded.shape == image.shape and decoded.dtype == np.uint8
  assert np.abs(decoded.astype(int) - image).max() > 0
  assert 0 < size < image.nbytes
  lossless_size = codecs.PNG.roundtrip(image)[1]
  assert size < lossless_size


def test_png_is_exact_and_every_codec_is_reproducible():
  image = photo_like(seed=3)
  decoded, _ = codecs.PNG.roundtrip(image)
  np.testing.assert_array_equal(decoded, image)
  for spec in ("jpeg:75", "webp:80", "png"):
    codec = codecs.parse(spec)
    assert codec.encode(image) == codec.encode(image)


def test_lower_quality_costs_fewer_bytes_and_more_error():
  image = photo_like(seed=5)
  hi, hi_bytes = codecs.parse("jpeg:95").roundtrip(image)
  lo, lo_bytes = codecs.parse("jpeg:30").roundtrip(image)
  err = lambda x: np.abs(x.astype(int) - image).mean()  # noqa: E731
  assert lo_bytes < hi_bytes and err(lo) > err(hi)


def test_bits_per_pixel_counts_bits_over_the_given_size():
  assert codecs.bits_per_pixel(1000, 40, 50) == pytest.approx(4.0)
