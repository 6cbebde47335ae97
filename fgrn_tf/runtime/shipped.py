"""Where the shipped weights live, and what a model's files state before it is loaded."""

from __future__ import annotations

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def default_model_path(scale: int) -> pathlib.Path:
  """Where the shipped weights for a scale live: `models/fgrn_x{scale}/` in the repository."""
  return ROOT / "models" / f"fgrn_x{scale}"


def peek_model(path) -> tuple[int, object] | None:
  """(scale, `ModelConfig` or None) that a model's files state, read without loading it.

  Reads a training workdir's config.json, or an export's manifest.json. None where neither
  says (a .keras, SavedModel or .tflite file: their scale is known once loaded) or they cannot
  be read (loading then says what is wrong).
  """
  from fgrn_tf import config, workdir

  path = pathlib.Path(path)
  try:
    if (path / workdir.CONFIG).is_file():
      model = workdir.read_experiment(path).model
      return model.scale, model
    if (path / "manifest.json").is_file():
      info = json.loads((path / "manifest.json").read_text())
      model = info.get("model_config")
      return int(info["scale"]), None if model is None else config.ModelConfig.from_dict(model)
  except Exception:  # foreign or damaged files: not for a peek to judge
    return None
  return None
