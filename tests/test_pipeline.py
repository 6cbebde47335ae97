"""The training pipeline: patch shapes and ranges, augmented crops, the bad-data rules,
held-out validation and the built-in images. (The bicubic LR is the model's:
test_fgrn.py checks it against MATLAB's on the very batch.)"""

import logging

import numpy as np
import pytest
import tensorflow as tf

from fgrn_tf.data import defaults, images, patches, pipeline


def _coded_image(h, w, tag):
  """An image whose pixels say where they are: R = row, G = column, B = tag (all distinct)."""
  rows, cols = np.mgrid[0:h, 0:w]
  return np.stack([rows, cols, np.full_like(rows, tag)], axis=-1).astype(np.uint8)


def _write(folder, name, image):
  folder.mkdir(parents=True, exist_ok=True)
  images.write_image(folder / name, image, overwrite=True)
  return str(folder / name)


def _dihedral_np(image, k):
  out = np.rot90(image, k % 4)
  return out[:, ::-1] if k >= 4 else out


def _find_source(patch, sources):
  """(tag, top, left, k) such that patch == dihedral(source[top:, left:], k), else None."""
  for k in range(8):
    # Undo the transform: the inverse of rot90^r then flip is flip then rot90^-r.
    undone = patch[:, ::-1] if k >= 4 else patch
    undone = np.rot90(undone, -(k % 4))
    top, left, tag = int(undone[0, 0, 0]), int(undone[0, 0, 1]), int(undone[0, 0, 2])
    if tag not in sources:
      continue
    p = patch.shape[0]
    window = sources[tag][top:top + p, left:left + p]
    if window.shape == undone.shape and np.array_equal(window, undone):
      return tag, top, left, k
  return None


@pytest.fixture
def coded_set(tmp_path):
  sources = {1: _coded_image(40, 52, 1), 2: _coded_image(48, 36, 2)}
  paths = [_write(tmp_path / "train", f"{t}.png", im) for t, im in sources.items()]
  return sources, patches.load_images(paths, min_size=16)


def _batches(image_set, n, scale=2, batch=4, patch=16, seed=0):
  it = iter(pipeline.training_dataset(image_set, scale, batch, patch, seed=seed))
  return [next(it).numpy() for _ in range(n)]


def test_batches_have_patch_shapes_and_unit_range(coded_set):
  _, image_set = coded_set
  for b in _batches(image_set, 2, scale=4, batch=3, patch=16):
    assert b.shape == (3, 16, 16, 3) and b.dtype == np.float32
    assert b.min() >= 0.0 and b.max() <= 1.0
    np.testing.assert_array_equal(b * 255, np.round(b * 255))  # 8-bit images, exactly


def test_patches_are_augmented_crops(coded_set):
  sources, image_set = coded_set
  seen_k, seen_tags = set(), set()
  for b in _batches(image_set, 8, batch=4, patch=16):
    for hr in b:
      found = _find_source(np.round(hr * 255).astype(np.uint8), sources)
      assert found is not None, "a patch is not a rotated/flipped window of a training image"
      seen_tags.add(found[0])
      seen_k.add(found[3])
  assert seen_tags == {1, 2}
  assert len(seen_k) >= 6, f"only dihedral transforms {sorted(seen_k)} in 32 patches"


def test_dihedral_matches_numpy_for_all_eight():
  image = _coded_image(6, 6, 0)
  for k in range(8):
    np.testing.assert_array_equal(pipeline.dihedral(tf.constant(image), tf.constant(k)).numpy(),
                                  _dihedral_np(image, k))


def test_same_seed_gives_same_batches(coded_set):
  _, image_set = coded_set
  a, b = _batches(image_set, 2, seed=3), _batches(image_set, 2, seed=3)
  c = _batches(image_set, 2, seed=4)
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[1], c[1])


def test_streamed_images_give_the_same_kind_of_batches(coded_set):
  sources, image_set = coded_set
  streamed = patches.load_images(image_set.paths, min_size=16, cache_limit_bytes=1)
  assert not streamed.cached and image_set.cached
  b = _batches(streamed, 1, batch=4, patch=16)[0]
  assert b.shape == (4, 16, 16, 3)
  assert _find_source(np.round(b[0] * 255).astype(np.uint8), sources) is not None


def test_bad_and_small_files_are_skipped_named_and_counted(tmp_path, caplog):
  folder = tmp_path / "data"
  good = _write(folder, "good.png", _coded_image(32, 32, 1))
  small = _write(folder, "small.png", _coded_image(10, 40, 2))
  (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  (folder / "empty.jpg").write_bytes(b"")
  files = patches.resolve_files([str(folder)])
  assert len(files) == 4
  with caplog.at_level(logging.WARNING):
    image_set = patches.load_images(files, min_size=16)
  assert image_set.paths == [good]
  assert image_set.too_small == [small]
  assert sorted(p for p, _ in image_set.bad) == [str(folder / "corrupt.png"),
                                                 str(folder / "empty.jpg")]
  assert "corrupt.png" in caplog.text and "empty.jpg" in caplog.text
  assert "skipped 2 unreadable" in caplog.text and "skipped 1 training image" in caplog.text
  assert "2 unreadable, 1 smaller" in image_set.summary()


def test_no_usable_image_is_an_error(tmp_path):
  small = _write(tmp_path, "small.png", _coded_image(8, 8, 1))
  with pytest.raises(patches.DataError, match="no usable training image"):
    patches.load_images([small], min_size=16)


@pytest.mark.parametrize("make", ["missing", "empty", "no_images"])
def test_missing_or_empty_folder_is_a_clear_error(tmp_path, make):
  folder = tmp_path / "data"
  if make != "missing":
    folder.mkdir()
  if make == "no_images":
    (folder / "notes.txt").write_text("not an image")
  with pytest.raises(patches.DataError, match=str(folder)):
    patches.resolve_files([str(folder)])


def test_gray_alpha_and_16_bit_become_8_bit_rgb(tmp_path):
  gray = _write(tmp_path, "gray.png", np.full((20, 20), 77, np.uint8))
  rgba = np.dstack([_coded_image(20, 20, 5), np.zeros((20, 20), np.uint8)])
  alpha = _write(tmp_path, "alpha.png", rgba)
  deep = _write(tmp_path, "deep.png", np.full((20, 20, 3), 65535, np.uint16))
  image_set = patches.load_images([gray, alpha, deep], min_size=16)
  g, a, d = image_set.arrays
  assert g.shape == (20, 20, 3) and (g == 77).all()
  np.testing.assert_array_equal(a, _coded_image(20, 20, 5))
  assert d.dtype == np.uint8 and (d == 255).all()


def test_holdout_is_fixed_whatever_the_order_and_too_many_is_an_error():
  files = [f"f{i}.png" for i in range(10)]
  train, held = patches.holdout_split(files, 3)
  assert len(held) == 3 and not set(held) & set(train) and len(train) == 7
  assert patches.holdout_split(files, 3) == (train, held)
  assert patches.holdout_split(files, 0) == (files, [])
  with pytest.raises(patches.DataError, match="cannot hold 10"):
    patches.holdout_split(files, 10)


def test_validation_images_are_centre_crops_on_the_scale_grid(tmp_path):
  big = _write(tmp_path, "big.png", _coded_image(50, 61, 1))
  tiny = _write(tmp_path, "tiny.png", _coded_image(6, 6, 2))
  kept, skipped = patches.validation_images([big, tiny], scale=4, crop=24)
  assert len(kept) == 1 and len(skipped) == 1 and "tiny.png" in skipped[0]
  np.testing.assert_array_equal(kept[0], _coded_image(50, 61, 1)[13:37, 18:42])
  whole, _ = patches.validation_images([big], scale=4, crop=0)
  assert whole[0].shape == (48, 60, 3)


def test_built_in_images_are_colour_photos_shipped_with_scikit_image():
  files = defaults.default_image_files()
  assert len(files) >= 6
  for f in files:
    rgb = images.read_rgb8(f)
    assert rgb.ndim == 3 and not np.array_equal(rgb[..., 0], rgb[..., 2])
  train, val = defaults.default_split(2)
  assert len(val) == 2 and not set(val) & set(train) and len(train) + 2 == len(files)
