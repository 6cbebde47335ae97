"""Where an evaluation's results go: the --output_dir checks made first, and the final writes.

A results folder must not change what a later run evaluates (it must not be, or be inside, a
dataset folder, nor hold images this tool did not write) and must not lose results silently
(replaced only with --overwrite). All is checked before anything is loaded; the files are
written at the end, each atomically, results.json last (see docs/evaluation.md).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from collections.abc import Sequence

from fgrn_tf import files
from fgrn_tf.data import images
from fgrn_tf.errors import os_reason
from fgrn_tf.evaluate.inputs import Dataset, EvalError

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
# The PNG "Software" text of every figure written here: how a later run tells its own figures
# from the images of a dataset folder given as --output_dir by mistake.
FIGURE_SOFTWARE = "fgrn-tf eval_main.py"
_FIGURE_MARK = b"Software\x00" + FIGURE_SOFTWARE.encode()


def figure_name(dataset: str, scale: int) -> str:
  return f"{dataset}_x{scale}.png"


def output_files(sets: Sequence[Dataset], scale: int) -> list[str]:
  """The names an evaluation of `sets` at `scale` writes into its output folder."""
  return [RESULTS_JSON, RESULTS_MD, *(figure_name(ds.name, scale) for ds in sets)]


def _exists_error(path: pathlib.Path, out: pathlib.Path) -> EvalError:
  return EvalError(f"{path} exists (pass --overwrite to replace the results in {out})")


def check_output_dir(output_dir) -> pathlib.Path:
  """The output folder as a path, if it is a folder, or can be made one, that this process
  can write in. Cheap, and run before anything is loaded, so a typo in the last flag does not
  cost a whole evaluation.

  Raises:
    EvalError: a file is in the way, or the folder (or its nearest existing parent) cannot be
      written in.
  """
  out = pathlib.Path(output_dir).expanduser()
  if os.path.lexists(out) and not out.is_dir():
    raise EvalError(f"--output_dir {out}: exists and is not a folder")
  base = out
  while not os.path.lexists(base) and base != base.parent:
    base = base.parent
  if not base.is_dir():
    raise EvalError(f"--output_dir {out}: {base} is not a folder")
  try:
    # Permission bits do not tell (root ignores them; read-only mounts, /proc): try it.
    os.rmdir(tempfile.mkdtemp(prefix=".eval-probe-", dir=base))
  except OSError as e:
    raise EvalError(f"--output_dir {out}: cannot write in {base} ({os_reason(e)})") from None
  return out


def _is_our_figure(path: pathlib.Path) -> bool:
  try:
    with open(path, "rb") as f:
      head = f.read(4096)  # matplotlib writes its text chunks right after the header
  except OSError:
    return False
  return head.startswith(b"\x89PNG") and _FIGURE_MARK in head


def _listed_figures(out: pathlib.Path) -> set[str]:
  """Figures named by a results.json already in `out` (also those written before figures
  carried FIGURE_SOFTWARE)."""
  try:
    old = json.loads((out / RESULTS_JSON).read_text())
    return {d["figure"] for d in old["datasets"].values() if isinstance(d.get("figure"), str)}
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return set()


def _foreign_image(out: pathlib.Path) -> str | None:
  """The name of an image file directly in `out` that no evaluation wrote, if there is one."""
  listed = None
  with os.scandir(out) as entries:
    for entry in entries:
      if pathlib.Path(entry.name).suffix.lower() not in images.IMAGE_EXTENSIONS:
        continue
      if not entry.is_file() or _is_our_figure(pathlib.Path(entry.path)):
        continue
      listed = _listed_figures(out) if listed is None else listed
      if entry.name not in listed:
        return entry.name
  return None


def check_outputs(out: pathlib.Path, sets: Sequence[Dataset], scale: int,
                  overwrite: bool) -> None:
  """Refuses an output folder whose use would change what is evaluated or lose results.

  Raises:
    EvalError: `out` is, or is inside, a dataset folder; it holds images this tool did not
      write; or it holds results and `overwrite` is False.
  """
  real = out.resolve()
  for ds in sets:
    root = ds.path.resolve()
    if real == root or root in real.parents:
      raise EvalError(f"--output_dir {out} is inside the dataset {ds.name} ({ds.path}) being "
                      f"evaluated: the next run would count the figures as images; choose "
                      f"another folder")
  if real.is_dir():
    try:
      foreign = _foreign_image(real)
    except OSError as e:
      raise EvalError(f"--output_dir {out}: cannot list it ({os_reason(e)})") from None
    if foreign:
      raise EvalError(f"--output_dir {out} holds images eval_main.py did not write "
                      f"({foreign}): an image folder? choose another folder")
  for name in output_files(sets, scale):
    path = out / name
    if not os.path.lexists(path):
      continue
    if not path.is_file():
      raise EvalError(f"{path}: exists and is not a file")
    if not overwrite:
      raise _exists_error(path, out)


def write_outputs(out: pathlib.Path, contents: dict[str, bytes], overwrite: bool) -> None:
  """Writes every file, each atomically and in the order given.

  On a failure removes the files this call created, so a full disk leaves the old results or
  none.

  Raises:
    EvalError: one line naming the file that could not be written.
  """
  created = []
  path = out
  try:
    files.make_dirs(out)
    for name, data in contents.items():
      path = out / name
      new = not os.path.lexists(path)
      files.write_bytes(path, data, overwrite=overwrite)
      if new:
        created.append(path)
  except OSError as e:
    for p in created:
      p.unlink(missing_ok=True)
    if isinstance(e, FileExistsError) and path != out:  # appeared since check_outputs
      raise _exists_error(path, out) from None
    raise EvalError(f"{path}: cannot write ({os_reason(e)})") from None
