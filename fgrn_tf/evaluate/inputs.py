"""What an evaluation reads: the methods asked for and the dataset folders, checked up front.

Every problem is an `EvalError` with one line naming the flag, name or folder at fault, raised
before a model or an image is loaded (see docs/evaluation.md).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence

from fgrn_tf.data import images
from fgrn_tf.errors import FGRNError

DATA_ROOT_ENV = "FGRN_DATA_ROOT"
METHODS = ("bicubic", "fgrn")


class EvalError(FGRNError):
  """Bad input to the evaluation (missing dataset or model, wrong scale): a one-line message."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A folder of HR images to evaluate on."""

  name: str
  path: pathlib.Path
  files: tuple[str, ...]


def default_data_root() -> pathlib.Path | None:
  """`$FGRN_DATA_ROOT`, else None: datasets are the user's, so there is no guessed location."""
  env = os.environ.get(DATA_ROOT_ENV)
  return pathlib.Path(env) if env else None


def resolve_datasets(specs: Sequence[str], data_root=None) -> list[Dataset]:
  """Dataset names or paths -> Datasets, each with its image files listed.

  Args:
    specs: folder names under the data root, or paths (blank entries are ignored).
    data_root: folder of named datasets (None: `default_data_root()`).

  Returns:
    One Dataset per spec; a name that repeats gets "_" appended so that outputs do not clash.

  Raises:
    EvalError: a folder is missing or unreadable, or no dataset is given.
  """
  root = pathlib.Path(data_root) if data_root else default_data_root()
  out: list[Dataset] = []
  for spec in specs:
    spec = spec.strip()
    if not spec:
      continue
    as_path = pathlib.Path(spec).expanduser()
    looked = []
    if root is not None and not as_path.is_absolute():
      looked.append(root / spec)
    looked.append(as_path)
    path = next((p for p in looked if p.is_dir()), None)
    if path is None:
      where = " or ".join(str(p) for p in looked)
      if as_path.is_absolute():
        hint = ""
      elif root is None:
        hint = f" (no data root: pass --data_root or set {DATA_ROOT_ENV})"
      else:
        hint = f" (pass --data_root or set {DATA_ROOT_ENV} to the folder that holds it)"
      raise EvalError(f"dataset {spec!r} not found: no folder {where}{hint}")
    try:
      files = images.list_images(path)
    except images.ImageError as e:
      raise EvalError(f"dataset {spec!r}: {e}") from None
    name = path.name or spec
    taken = {d.name for d in out}
    while name in taken:
      name += "_"
    out.append(Dataset(name, path, tuple(files)))
  if not out:
    raise EvalError("no dataset given (--datasets Set5,Set14 or paths)")
  return out


def parse_methods(spec: str | Sequence[str]) -> list[str]:
  """"fgrn,bicubic" (or a list) -> the method names, lower-cased, in order, without repeats.

  Raises:
    EvalError: a name not in METHODS, or none at all.
  """
  names = spec.split(",") if isinstance(spec, str) else list(spec)
  names = [n.strip().lower() for n in names if n.strip()]
  bad = [n for n in names if n not in METHODS]
  if bad or not names:
    raise EvalError(f"unknown method {', '.join(bad) or '(none)'}; choose from "
                    f"{', '.join(METHODS)} (comma-separated)")
  return list(dict.fromkeys(names))


def min_side(scale: int) -> int:
  """Smallest mod-cropped HR side evaluated: SSIM's 11x11 window after the border crop."""
  side = 11 + 2 * scale
  return side + (-side % scale)
