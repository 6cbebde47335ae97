"""The bundled models: where they live (package data of `fgrn_tf`) and what each one is.

They sit in `fgrn_tf/shipped_models/<name>/` (a training workdir plus its model card) and are
found through `importlib.resources`, so an installed wheel finds its own copy wherever it is
installed, and a checkout (the editable install) finds the repository's one copy.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import pathlib

from fgrn_tf import config
from fgrn_tf.errors import FGRNError

PACKAGE = "fgrn_tf"
FOLDER = "shipped_models"
CARD = "MODEL_CARD.md"
CARD_DIR = "card"  # the model card's pictures (`fgrn_tf.export.model_card.write_crops`)
# The card's table of reconstruction figures, and its row for the model as shipped (Keras).
_FIGURES_HEADING = "## Reconstruction"
_KERAS_ROW = "FGRN (Keras)"


class BundleError(FGRNError):
  """The package's models cannot be read where the package is installed (a zipped install)."""


def folder() -> pathlib.Path:
  """The folder holding the bundled models, inside the installed package.

  Raises:
    BundleError: the package is not installed as files (e.g. run from a zip archive): the
      backends load models from real paths.
  """
  found = importlib.resources.files(PACKAGE) / FOLDER
  if not isinstance(found, pathlib.Path):
    raise BundleError(f"the bundled models are inside {found} (not a folder): install the "
                      f"fgrn-tf wheel with pip, or give --model a path")
  return found


def names() -> list[str]:
  """The bundled models' names, sorted (a folder with a config.json is one)."""
  root = folder()
  if not root.is_dir():
    return []
  return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def model_dir(name: str) -> pathlib.Path:
  """Where the bundled model `name` lives (it may not exist: see `names`)."""
  return folder() / name


def default_model_path(scale: int) -> pathlib.Path:
  """The model the tools use when given no --model: the bundled `fgrn_x{scale}`."""
  return model_dir(f"fgrn_x{scale}")


@dataclasses.dataclass(frozen=True)
class Bundled:
  """What `fgrn models` says of one bundled model.

  Attributes:
    name: the folder's name, which `--model` and `fgrn_tf.load` take.
    path: its folder.
    scale: the rescaling factor.
    size_bytes: the folder's files in all (weights, TFLite halves, card).
    trained_for: "lossless", "JPEG q75..95", with "phone, " before it for a phone-sized one.
    set5: (Y PSNR dB, SSIM) of the round trip on Set5 from its model card, None if it has none.
  """

  name: str
  path: pathlib.Path
  scale: int
  size_bytes: int
  trained_for: str
  set5: tuple[float, float] | None


def trained_for(cfg: dict) -> str:
  """What a model was trained for, in a few words, from its config.json (`cfg`)."""
  model = cfg["model"]
  objective = config.Objective.of(cfg.get("objective"), model)
  low, high = objective.codec_min_quality, objective.codec_max_quality
  lr = f"JPEG q{low}..{high}" if low else "lossless"
  try:
    paper_width = config.model_preset_for_scale(model["scale"]).width
  except config.ConfigError:  # no paper preset of this scale: nothing to be smaller than
    return lr
  return f"phone, {lr}" if model.get("width", paper_width) < paper_width else lr


def card_figures(card: str, dataset: str = "Set5") -> tuple[float, float] | None:
  """(PSNR, SSIM) of the model as shipped on `dataset`, read from a model card's text
  (`fgrn_tf.export.model_card` writes the table); None where the card does not hold them."""
  lines = card.splitlines()
  start = next((i for i, line in enumerate(lines) if line.startswith(_FIGURES_HEADING)), None)
  if start is None:
    return None
  table = [line for line in lines[start + 1:] if line.startswith("|")]
  if not table:
    return None
  header = [cell.strip() for cell in table[0].strip("|").split("|")]
  row = next((line for line in table if line.strip("| ").startswith(_KERAS_ROW)), None)
  if row is None or dataset not in header:
    return None
  cell = [c.strip() for c in row.strip("|").split("|")][header.index(dataset)]
  try:
    psnr, ssim = (float(v) for v in cell.split("/"))
  except ValueError:  # "-": a figure the evaluation did not have
    return None
  return psnr, ssim


def describe(name: str) -> Bundled:
  """What the bundled model `name` is, from its files (no model is loaded)."""
  path = model_dir(name)
  cfg = json.loads((path / "config.json").read_text())
  model = cfg["model"]
  card = path / CARD
  size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
  return Bundled(name, path, int(model["scale"]), size, trained_for(cfg),
                 card_figures(card.read_text()) if card.is_file() else None)
