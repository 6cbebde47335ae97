"""Writing files so that a crash never leaves half of one: every fgrn-tf output goes through here.

Each write goes to a hidden temporary name beside its target and is renamed over it once
complete and synced, so a reader (or the next run after `kill -9`) sees the old file or the new
one, never a partial one. Files and folders get the permissions the umask gives a plain
`open`/`mkdir` (a TF Serving account must be able to read an export), and an error names the
target, never the temporary name the user did not ask for.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import secrets
from collections.abc import Callable

TEMP_SUFFIX = ".tmp"


def temp_path(target: str | os.PathLike) -> pathlib.Path:
  """A fresh hidden name beside `target` that keeps its suffix (Keras checks `.weights.h5`).

  The name is cut so that the temporary one stays within the file system's 255 bytes when the
  target's does.
  """
  target = pathlib.Path(target)
  return target.with_name(f".{secrets.token_hex(4)}.{target.name[-230:]}")


def stale_temps(target: str | os.PathLike) -> list[pathlib.Path]:
  """The `temp_path` files of `target` that a writer killed mid-write left behind."""
  target = pathlib.Path(target)
  pattern = "." + "?" * 8 + "." + glob.escape(target.name[-230:])
  return sorted(target.parent.glob(pattern))


def umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def make_dirs(path: str | os.PathLike) -> list[pathlib.Path]:
  """Creates `path` and missing parents (umask permissions); returns the folders it made."""
  path = pathlib.Path(path)
  made = []
  for folder in reversed([path, *path.parents]):
    if not folder.exists():
      folder.mkdir()
      made.append(folder)
  return made


def target_error(error: OSError, tmp: pathlib.Path, target: pathlib.Path) -> OSError:
  """`error` as the same kind of OSError about `target` instead of the temporary file."""
  if error.errno:
    return type(error)(error.errno, os.strerror(error.errno), str(target))
  return OSError(f"{target}: {str(error).replace(str(tmp), str(target))}")


def write_with(target: str | os.PathLike, write: Callable[[pathlib.Path], None],
               overwrite: bool = True) -> None:
  """Calls `write(tmp)` to make the file at a temporary name, then renames it to `target`.

  Args:
    target: the final path; its folder is created if missing.
    write: writes the whole file at the path it is given (e.g. `model.save_weights`).
    overwrite: replace an existing `target` (else FileExistsError, before any work).

  Raises:
    FileExistsError, or OSError naming `target`; the temporary file is removed either way.
  """
  target = pathlib.Path(target)
  if not overwrite and target.exists():
    raise FileExistsError(f"{target}: exists (pass --overwrite to replace it)")
  tmp = temp_path(target)
  try:
    make_dirs(target.parent)
    write(tmp)
    os.chmod(tmp, 0o666 & ~umask())  # some writers (mkstemp, h5py) make owner-only files
    with open(tmp, "rb") as f:
      os.fsync(f.fileno())
    os.replace(tmp, target)
  except OSError as e:
    raise target_error(e, tmp, target) from None
  finally:
    tmp.unlink(missing_ok=True)


def write_bytes(target: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
  """`data` into `target`, atomically (see `write_with`)."""
  write_with(target, lambda tmp: tmp.write_bytes(data), overwrite)


def write_text(target: str | os.PathLike, text: str, overwrite: bool = True) -> None:
  write_bytes(target, text.encode(), overwrite)


def write_json(target: str | os.PathLike, data, overwrite: bool = True) -> None:
  """`data` as indented, key-sorted JSON, atomically."""
  write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n", overwrite)
