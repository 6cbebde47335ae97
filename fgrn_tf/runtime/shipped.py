"""Where the shipped models live."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def default_model_path(scale: int) -> pathlib.Path:
  """Where the shipped weights for a scale live: `models/fgrn_x{scale}/` in the repository."""
  return ROOT / "models" / f"fgrn_x{scale}"
