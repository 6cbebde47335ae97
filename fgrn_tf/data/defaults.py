"""The built-in training images: the colour photographs scikit-image ships inside its wheel.

They need no download, so `python train_main.py` with no data flags trains on a fresh machine.
Found on disk next to `skimage.data` (the package's own data folder); nothing is fetched.
"""

from __future__ import annotations

import pathlib

# The natural colour photographs among skimage.data's bundled files. Left out: the gray ones,
# synthetic images (color.png, logo.png, chessboard_RGB.png, phantom.png), the float TIFF, and
# motorcycle_right.png (the same scene as motorcycle_left.png, which would leak into a held-out
# validation image).
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)


# Held out for validation first (natural photos of everyday scenes; the telescope, microscope
# and fundus images stay in training, where they add texture variety).
VALIDATION_ORDER = ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg")


def skimage_data_dir() -> pathlib.Path:
  """The folder holding scikit-image's bundled sample files."""
  import skimage.data

  return pathlib.Path(skimage.data.__file__).resolve().parent


def default_image_files() -> list[str]:
  """Paths of the bundled colour photographs, sorted; FileNotFoundError if none are there."""
  folder = skimage_data_dir()
  found = [str(folder / name) for name in SKIMAGE_PHOTOS if (folder / name).is_file()]
  if not found:
    raise FileNotFoundError(f"{folder}: none of scikit-image's bundled photos "
                            f"({', '.join(SKIMAGE_PHOTOS)}); pass --data_dirs")
  return sorted(found)


def default_split(count: int) -> tuple[list[str], list[str]]:
  """(training, validation) files of the built-in images, `count` of them (in
  `VALIDATION_ORDER`) held out for validation."""
  files = default_image_files()
  by_name = {pathlib.Path(f).name: f for f in files}
  held = [by_name[n] for n in VALIDATION_ORDER if n in by_name][:max(count, 0)]
  if len(held) < count or len(held) >= len(files):
    raise FileNotFoundError(f"cannot hold {count} of the {len(files)} built-in images out for "
                            f"validation; pass --val_images smaller or --val_dir")
  return [f for f in files if f not in held], sorted(held)
