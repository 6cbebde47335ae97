"""What an export or ship may write over, and how: built beside the target, swapped in at the end.

An existing output folder is replaced only when the tool made it: an export's manifest.json has
`MANIFEST_FORMAT` and the folder holds nothing but what an export writes (`not_an_export`). A
training workdir, a dataset or a folder of anything else is refused, whatever `--overwrite`
says, as is an output that is, holds or lies in what is read (`check_apart`).

Every folder is built in a hidden staging folder beside its target and renamed into place once
complete (`build_in_place`), so a failure leaves the old folder or nothing, and the errors name
the final paths, never the staging ones.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TypeVar

from fgrn_tf import files
from fgrn_tf.data.images import IMAGE_EXTENSIONS
from fgrn_tf.errors import FGRNError, one_line
from fgrn_tf.export import ExportError, server_config, tflite
from fgrn_tf.export.manifest import MANIFEST_FORMAT
from fgrn_tf.runtime.backends import MANIFEST, TFLITE_FILES
from fgrn_tf.workdir import BEST_WEIGHTS, CONFIG, LAST_WEIGHTS

# What `keras.export.ExportArchive.write_out` puts in a SavedModel version folder.
SAVED_MODEL_ENTRIES = frozenset(
    {"saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra"})

T = TypeVar("T")
# Looking for images in a folder that is not an export only picks the message: stop early.
_IMAGE_SCAN_LIMIT = 10_000
# The hidden staging names of tempfile.mkdtemp here: ".<name>.<8 random>.<tmp|new|old>".
_STAGING_NAME = re.compile(r"/\.([^/\s'\"]+)\.[a-z0-9_]{8}\.(?:tmp|new|old)(?=$|[/\s'\":,;)])")


# ---- staging and swapping --------------------------------------------------------------------

def follow_umask(root) -> None:
  """Gives `root` and everything under it the modes a plain mkdir/open would: tempfile makes
  its folders and files owner-only, which would keep TF Serving's account out of an export."""
  umask = files.umask()
  root = pathlib.Path(root)
  os.chmod(root, 0o777 & ~umask)
  for folder, dirs, names in os.walk(root):
    for name in dirs + names:
      path = os.path.join(folder, name)
      if not os.path.islink(path):  # chmod would follow it out of the tree
        os.chmod(path, (0o777 if name in dirs else 0o666) & ~umask)


def staging_dir(target: pathlib.Path, suffix: str = ".tmp") -> pathlib.Path:
  """A new hidden folder beside `target` to build it in (then renamed onto it)."""
  target.parent.mkdir(parents=True, exist_ok=True)
  path = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=suffix,
                                       dir=target.parent))
  os.chmod(path, 0o777 & ~files.umask())
  return path


def replace_dir(stage: pathlib.Path, target: pathlib.Path) -> None:
  """Renames `stage` onto `target`; an existing `target` is moved aside first and deleted only
  once `stage` is in its place (restored if that rename fails)."""
  if not target.exists():
    stage.rename(target)
    return
  trash = staging_dir(target, ".old")
  try:
    target.rename(trash / target.name)
    try:
      stage.rename(target)
    except BaseException:
      (trash / target.name).rename(target)
      raise
  finally:
    shutil.rmtree(trash, ignore_errors=True)


def public_error(e: BaseException, hidden: Mapping[pathlib.Path, pathlib.Path]) -> ExportError:
  """`e` as one line that names final paths instead of the hidden staging ones.

  Args:
    e: the error.
    hidden: maps each staging folder to the folder it becomes.

  Returns:
    An ExportError; an OSError reads "<path>: <reason>" (e.g. "out/fgrn_x2/1/variables/...:
    No space left on device").
  """
  def public(text: str) -> str:
    for stage, real in hidden.items():
      text = text.replace(str(stage), str(real))
    return _STAGING_NAME.sub(r"/\1", text)  # staging inside staging (SavedModel, .tflite)

  if isinstance(e, OSError) and e.strerror:
    where = f"{public(os.fsdecode(e.filename))}: " if e.filename is not None else ""
    return ExportError(f"{where}{e.strerror}")
  return ExportError(public(one_line(e)))


@contextlib.contextmanager
def reported():
  """Turns the OSError or ValueError of a missing or unreadable input into one ExportError
  line (errors of the tools' own kinds pass as they are)."""
  try:
    yield
  except FGRNError:
    raise
  except (OSError, ValueError) as e:
    raise public_error(e, {}) from None


def build_in_place(target, build: Callable[[pathlib.Path], T],
                   recheck: Callable[[], None] | None = None, suffix: str = ".tmp") -> T:
  """Calls `build(stage)` on a new hidden folder beside `target`, then swaps it in.

  Args:
    target: the folder to create or replace.
    build: fills the staging folder it is given; what it returns is returned.
    recheck: called just before the swap (the target may have changed meanwhile); raises to
      refuse it.
    suffix: of the staging folder's name.

  Raises:
    ExportError for an OSError or ExportError (and any error whose message names the staging
    folder, as TF's I/O errors do), naming the final paths. The staging folder is removed
    whatever happens, and `target` is left as it was unless the swap succeeded.
  """
  target = pathlib.Path(target)
  stage = None
  try:
    stage = staging_dir(target, suffix)
    result = build(stage)
    follow_umask(stage)  # the staging folder is owner-only; TF Serving's account reads it
    if recheck is not None:
      recheck()
    replace_dir(stage, target)
    return result
  except (ExportError, OSError) as e:  # disk full, no permission: name the final path
    raise public_error(e, {stage: target} if stage else {}) from None
  except Exception as e:
    if stage is not None and (str(stage) in str(e) or _STAGING_NAME.search(str(e))):
      raise public_error(e, {stage: target}) from None
    raise
  finally:
    if stage is not None:
      shutil.rmtree(stage, ignore_errors=True)


# ---- what may be written over ----------------------------------------------------------------

def _resolved(path) -> pathlib.Path:
  return pathlib.Path(os.path.abspath(path)).resolve()


def check_apart(output_dir, inputs: Iterable[tuple[str, object]], flag: str = "--output_dir",
                containers: Collection[str] = ()) -> None:
  """Refuses an output folder that is one of `inputs` or holds one (ExportError, one line).

  Args:
    output_dir: the folder to be written.
    inputs: (how the user named it, path) of what is read ("--model", "--check_dir", ...);
      None paths are ignored.
    flag: how the user named `output_dir`.
    containers: the names among `inputs` that are training workdirs: the output may not lie
      inside those either.
  """
  out = _resolved(output_dir)
  for name, path in inputs:
    if path is None or str(path) == "":
      continue
    p = _resolved(path)
    if out == p:
      raise ExportError(f"{flag} {output_dir} is the {name} {path}: choose another folder")
    if out in p.parents:
      raise ExportError(f"{flag} {output_dir} holds the {name} {path}: choose another folder")
    if name in containers and p in out.parents:
      raise ExportError(f"{flag} {output_dir} is inside the {name} {path}: choose a folder "
                        f"outside it")


def workdir_file(folder: pathlib.Path) -> str | None:
  """A file or folder only a training workdir holds, if `folder` has one."""
  return next((n for n in (CONFIG, BEST_WEIGHTS, LAST_WEIGHTS, "backup", "tensorboard")
               if (folder / n).exists()), None)


def an_image(folder: pathlib.Path) -> str | None:
  """An image file under `folder` (relative path), if one is among its first entries."""
  for p in itertools.islice(folder.rglob("*"), _IMAGE_SCAN_LIMIT):
    if p.suffix.lower() in IMAGE_EXTENSIONS:
      return p.relative_to(folder).as_posix()
  return None


def _plain(p: pathlib.Path, is_dir: bool) -> bool:
  return not p.is_symlink() and (p.is_dir() if is_dir else p.is_file())


def _foreign(folder: pathlib.Path, manifest: dict) -> str | None:
  """The first path under an export folder that no export writes, or None."""
  model_name, version = manifest.get("model_name"), str(manifest.get("version"))
  variants = {v.folder for v in tflite.VARIANTS.values()}
  for entry in sorted(folder.iterdir()):
    if entry.name in (MANIFEST, *server_config.FILES) and _plain(entry, False):
      continue
    if entry.name == tflite.TFLITE_DIR and _plain(entry, True):
      for variant in sorted(entry.iterdir()):
        if variant.name not in variants or not _plain(variant, True):
          return variant.relative_to(folder).as_posix()
        for f in sorted(variant.iterdir()):
          if f.name not in TFLITE_FILES.values() or not _plain(f, False):
            return f.relative_to(folder).as_posix()
      continue
    if isinstance(model_name, str) and entry.name == model_name and _plain(entry, True):
      for v in sorted(entry.iterdir()):
        if v.name != version or not _plain(v, True):
          return v.relative_to(folder).as_posix()
        for f in sorted(v.iterdir()):
          if f.name not in SAVED_MODEL_ENTRIES or f.is_symlink():
            return f.relative_to(folder).as_posix()
      continue
    return entry.relative_to(folder).as_posix()
  return None


def not_an_export(folder) -> str | None:
  """Why the non-empty `folder` is not an export the tools wrote, or None when it is one."""
  folder = pathlib.Path(folder)
  found = workdir_file(folder)
  if found:
    return f"holds a training workdir ({found})"
  path = folder / MANIFEST
  if not path.is_file():
    image = an_image(folder)
    if image:
      return f"holds images ({image})"
    return f"is not an export (no {MANIFEST})"
  try:
    manifest = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, ValueError):
    manifest = None
  if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
    return f"is not an export (its {MANIFEST} is not of format {MANIFEST_FORMAT})"
  foreign = _foreign(folder, manifest)
  if foreign:
    return f"holds {foreign}, which an export does not write"
  return None


def check_replaceable(folder, why_not: Callable[[pathlib.Path], str | None],
                      refused: Callable[[str], str]) -> bool:
  """Refuses a `folder` that must not be written (ExportError, one line).

  Args:
    folder: the output folder.
    why_not: for an existing, non-empty folder, why it is not what the tool may replace (None
      when it is).
    refused: the error message for that reason.

  Returns:
    True when `folder` holds something that may be replaced, False when it is missing or
    empty. A file, a symbolic link or what `why_not` refuses raise ExportError.
  """
  folder = pathlib.Path(folder)
  if folder.is_symlink():
    raise ExportError(f"{folder}: is a symbolic link; give the folder itself")
  if not folder.exists():
    return False
  if not folder.is_dir():
    raise ExportError(f"{folder}: exists and is not a folder")
  try:
    if not any(folder.iterdir()):
      return False
    reason = why_not(folder)
  except OSError as e:
    raise public_error(e, {}) from None
  if reason:
    raise ExportError(refused(reason))
  return True


def check_output_dir(output_dir, overwrite: bool = False) -> None:
  """Refuses an `output_dir` the export must not write to (ExportError, one line).

  A missing or empty folder is fine; an export made here before only with `overwrite`;
  anything else (a file, a link, a training workdir, images, other files) never.
  """
  out = pathlib.Path(output_dir)
  if check_replaceable(out, not_an_export,
                       lambda reason: f"{out}: exists and is not empty, and {reason}: it is not "
                                      f"replaced; choose another output folder") \
      and not overwrite:
    raise ExportError(f"{out}: holds a previous export (pass --overwrite to replace it)")
