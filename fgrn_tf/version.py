"""The package's version: pyproject.toml states it once, the installed metadata holds it."""

from __future__ import annotations

import importlib.metadata

DISTRIBUTION = "fgrn-tf"


def version() -> str:
  """`0.2.0`, as pip installed it; "unknown" for a checkout imported without installing."""
  try:
    return importlib.metadata.version(DISTRIBUTION)
  except importlib.metadata.PackageNotFoundError:
    return "unknown"
