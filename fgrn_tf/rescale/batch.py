"""Running downscale, upscale or roundtrip over many files: inputs, checks first, safe writes.

- Checks first. `preflight` does, for every file, what needs no model (readable image, free
  targets, scale record), so a command line's mistakes show before a model takes seconds to load.
- Safety. Two outputs of one run on one path are refused before any work (`TargetClash`). An
  output never replaces an input, nor an existing file without `overwrite`; it is written
  through `fgrn_tf.files` (a temporary file beside it, renamed), so an interrupted run leaves no
  partial image, and a file whose second output (roundtrip's LR) fails keeps no new first one.
  Output folders are made when the first file is written into them, and a folder made for a
  write that failed is removed again. A file that fails is reported by name and the others go on.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence

from fgrn_tf import files
from fgrn_tf.data import images
from fgrn_tf.data.codecs import Codec
from fgrn_tf.errors import FGRNError, UsageError, one_line, os_reason
from fgrn_tf.metrics.strips import image_quality
from fgrn_tf.rescale.picture import (
  Picture,
  downscale_picture,
  encode_picture,
  scale_mismatch,
  upscale_picture,
)
from fgrn_tf.rescale.tiling import DEFAULT_TILE
from fgrn_tf.runtime.backends import MissingHalfError

COMMANDS = ("downscale", "upscale", "roundtrip")


@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and the name of its outputs (its file name, or its path under a folder)."""

  source: pathlib.Path
  name: pathlib.Path


@dataclasses.dataclass
class Result:
  """What happened to one input; `error` is one line naming the file, or None."""

  source: pathlib.Path
  outputs: list[pathlib.Path] = dataclasses.field(default_factory=list)
  error: str | None = None
  psnr: float | None = None
  ssim: float | None = None
  lr_bytes: int | None = None  # the LR as stored (PNG or the --codec's format)
  seconds: float = 0.0


class TargetClash(UsageError, ValueError):
  """Two outputs of one run would be written to one path; the run is refused before any work."""


def collect_inputs(inputs: Sequence[str]) -> tuple[list[Job], list[Result]]:
  """Expands files, folders (recursively, image extensions only) and globs into jobs.

  A file named twice (directly, by a glob, in a folder) is one job. Two files with one output
  name are two jobs: `check_targets` refuses them, with the folders the outputs go to.

  Returns:
    (jobs, failures): a failure for each argument that names nothing.
  """
  jobs: list[Job] = []
  failures: list[Result] = []
  seen: set[pathlib.Path] = set()
  for arg in inputs:
    path = pathlib.Path(arg)
    if path.is_dir():
      try:
        found = [(pathlib.Path(p), pathlib.Path(p).relative_to(path))
                 for p in images.list_images(path)]
      except images.ImageError as e:
        failures.append(Result(path, error=str(e)))
        continue
    elif path.exists():
      found = [(path, pathlib.Path(path.name))]
    elif glob.has_magic(arg):
      found = [(pathlib.Path(p), pathlib.Path(pathlib.Path(p).name))
               for p in sorted(glob.glob(arg, recursive=True)) if os.path.isfile(p)]
      if not found:
        failures.append(Result(path, error=f"{arg}: no file matches"))
        continue
    else:
      failures.append(Result(path, error=f"{arg}: no such file or folder"))
      continue
    for source, name in found:
      key = source.resolve()
      if key not in seen:
        seen.add(key)
        jobs.append(Job(source, name))
  return jobs, failures


def output_targets(command: str, job: Job, out_dir=None, lr_dir=None,
                   codec: Codec | None = None) -> list[tuple[str, pathlib.Path]]:
  """(kind, path) of each file `command` writes for a job: kind "HR" or "LR", in write order.

  An LR stored with a lossy `codec` takes the codec's extension (photo.png -> photo.jpg)."""
  lr_name = job.name if codec is None or codec.lossless else \
      str(pathlib.Path(job.name).with_suffix(codec.extension))
  kind = "LR" if command == "downscale" else "HR"
  name = lr_name if command == "downscale" else job.name
  targets = [] if out_dir is None else [(kind, pathlib.Path(out_dir) / name)]
  if command == "roundtrip" and lr_dir is not None:
    targets.append(("LR", pathlib.Path(lr_dir) / lr_name))
  return targets


def _same_path_key(path: pathlib.Path) -> str:
  # realpath follows the links of the part that exists: `out` and `./link-to-out` are one place.
  return os.path.normcase(os.path.realpath(path))


def check_targets(command: str, jobs: Sequence[Job], out_dir=None, lr_dir=None,
                  codec: Codec | None = None) -> None:
  """Raises TargetClash when two outputs of the run would be one file (the second would silently
  replace the first, or be refused half way through the run).

  Covers two inputs of one name, -o and lr_dir being one folder, and folders nested so that
  one input's HR is another's LR; the message names the path and both inputs.
  """
  first: dict[str, tuple[str, Job]] = {}
  clashes: list[str] = []
  for job in jobs:
    for kind, target in output_targets(command, job, out_dir, lr_dir, codec):
      key = _same_path_key(target)
      if key not in first:
        first[key] = (kind, job)
        continue
      (kind0, job0) = first[key]
      if command == "roundtrip":
        what = f"the {kind0} of {job0.source} and the {kind} of {job.source}"
      else:
        what = f"{job0.source} and {job.source}"
      clashes.append(f"{what} would both be written to {target}")
  if clashes:
    more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
    raise TargetClash(clashes[0] + more)


def not_a_folder(path) -> pathlib.Path | None:
  """The path, or the parent of it, that exists and is not a folder, so that no folder can be
  made at `path`; None when `path` is a folder or can be made."""
  path = pathlib.Path(path)
  for candidate in (path, *path.parents):
    if candidate.exists():
      return None if candidate.is_dir() else candidate
  return None


def check_source(path) -> None:
  """Refuses (ImageError naming the file) what a file's first bytes tell without decoding it:
  missing, unreadable, empty, or in no format the decoder reads. Truncated or corrupt data is
  found when the file is decoded."""
  import cv2  # not at the top: images sets OpenCV's pixel ceiling before cv2 first loads

  path = pathlib.Path(path)
  if not path.is_file():
    raise images.ImageError(f"{path}: no such file")
  try:
    with open(path, "rb") as f:
      head = f.read(1)
  except OSError as e:
    raise images.ImageError(f"{path}: cannot read ({os_reason(e)})") from None
  if not head:
    raise images.ImageError(f"{path}: empty file")
  try:
    known = cv2.haveImageReader(str(path))  # reads the signature, as imdecode's own check does
  except (cv2.error, UnicodeError):  # a name OpenCV cannot take: decoding will tell
    known = True
  if not known:
    raise images.ImageError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
  images.check_header(path)  # a file over the pixel limit is refused before the model loads


class _Skip(Exception):
  """A per-file failure whose message is already one line naming the file."""


def _check_job_targets(targets: Sequence[pathlib.Path], inputs: set[pathlib.Path],
                       source: pathlib.Path, overwrite: bool) -> None:
  """Per-file refusals, before anything is computed for the file; creates nothing."""
  for target in targets:
    try:
      if target.resolve() in inputs or (target.exists() and source.exists()
                                        and os.path.samefile(target, source)):
        raise _Skip(f"{source}: output {target} is an input; refusing to overwrite it")
      if target.is_dir():
        raise _Skip(f"{source}: output {target} is a folder")
      if target.exists() and not overwrite:
        raise _Skip(f"{source}: output {target} exists (pass --overwrite to replace it)")
      blocker = not_a_folder(target.parent)
    except OSError as e:  # e.g. a name too long for the file system
      raise _Skip(f"{source}: cannot use output {target} ({os_reason(e)})") from None
    if blocker is not None:
      raise _Skip(f"{source}: cannot create output folder {target.parent} ({blocker} is a file)")


def preflight(command: str, jobs: Sequence[Job], out_dir=None, lr_dir=None,
              overwrite: bool = False, scale: int | None = None, codec: Codec | None = None
              ) -> tuple[list[Job], list[Result]]:
  """What can be refused before a model is loaded, for the whole run and for each file.

  Args:
    command, jobs, out_dir, lr_dir, overwrite, codec: as for `rescale_files`.
    scale: the model's scale where it is known before loading; `upscale` then refuses the LR
      files that record another one.

  Returns:
    (jobs that passed, failures): a failure for each file that is not a readable image, whose
    output is an input, a folder or (without `overwrite`) an existing file, or that records
    another scale. `rescale_files` checks them again as it goes (files change).

  Raises:
    TargetClash: two outputs would be one file (see `check_targets`).
  """
  check_targets(command, jobs, out_dir, lr_dir, codec)
  inputs = {job.source.resolve() for job in jobs}
  passed, failures = [], []
  for job in jobs:
    try:
      check_source(job.source)
      refusal = scale_mismatch(job.source, scale) if command == "upscale" and scale else None
      if refusal:
        raise _Skip(refusal)
      _check_job_targets([t for _, t in output_targets(command, job, out_dir, lr_dir, codec)],
                         inputs, job.source, overwrite)
    except (_Skip, images.ImageError) as e:
      failures.append(Result(job.source, error=str(e)))
    else:
      passed.append(job)
  return passed, failures


def _make_folders(folder: pathlib.Path, source: pathlib.Path, created: list[pathlib.Path]
                  ) -> None:
  """Makes `folder` and its missing parents, adding each one made to `created` (as it goes,
  so that a failure half way still lets the caller remove what was made)."""
  missing = []
  while not folder.exists() and folder != folder.parent:
    missing.append(folder)
    folder = folder.parent
  if not folder.is_dir():
    raise _Skip(f"{source}: cannot create output folder {missing[0] if missing else folder} "
                f"({folder} is a file)")
  for part in reversed(missing):
    try:
      part.mkdir()
    except FileExistsError:  # made meanwhile by someone else: theirs, not ours to remove
      continue
    except OSError as e:
      raise _Skip(f"{source}: cannot create output folder {part} ({os_reason(e)})") from None
    created.append(part)


def _remove_empty(created: list[pathlib.Path]) -> None:
  for folder in reversed(created):
    try:
      folder.rmdir()  # only when empty: files of other jobs or other programs stay
    except OSError:
      pass


def _write_all(outputs: Sequence[tuple[pathlib.Path, bytes]], source: pathlib.Path,
               overwrite: bool) -> None:
  """Writes a job's files, all or none: on a failure (or Ctrl-C) the files it had made and the
  folders made for them are removed (a file it replaced under `overwrite` is the new one)."""
  made: list[pathlib.Path] = []
  created: list[pathlib.Path] = []
  try:
    for target, data in outputs:
      _make_folders(target.parent, source, created)
      existed = target.exists()
      try:
        files.write_bytes(target, data, overwrite=overwrite)
      except FileExistsError:
        raise _Skip(f"{source}: output {target} exists (pass --overwrite to replace it)") from None
      except OSError as e:
        raise _Skip(f"{source}: cannot write {target} ({os_reason(e)})") from None
      if not existed:
        made.append(target)
  except BaseException:
    for target in made:
      target.unlink(missing_ok=True)
    _remove_empty(created)
    raise


def _outputs(command: str, backend, picture: Picture, result: Result, out_target, lr_target,
             tile: int, metrics: bool, on_tile, codec: Codec | None = None
             ) -> list[tuple[pathlib.Path, bytes]]:
  """The encoded files of one job, computed before anything is written (a file that cannot be
  encoded leaves none); fills in the result's PSNR/SSIM for a roundtrip with `metrics`, and
  the LR's encoded size."""
  s = backend.scale
  lossy = codec is not None and not codec.lossless
  if command == "upscale":
    return [(out_target, encode_picture(out_target, upscale_picture(backend, picture, tile,
                                                                    on_tile)))]
  lr = downscale_picture(backend, picture, tile, on_tile)
  # The LR as its file would hold it: a gray LR is stored (and read back) with one channel.
  lr = dataclasses.replace(lr, rgb=lr.rgb8_as_written())
  if lossy:  # what the codec keeps (colour, 8 bits) is what the receiver upscales
    lr_data = codec.encode(lr.rgb)
    lr = dataclasses.replace(lr, rgb=codec.decode(lr_data), alpha=None, bit_depth=8)
  else:
    lr_data = encode_picture(lr_target or out_target or pathlib.Path("lr.png"), lr, s)
  result.lr_bytes = len(lr_data)
  if command == "downscale":
    return [(out_target, lr_data)]
  sr = upscale_picture(backend, lr, tile, on_tile)
  if metrics:
    result.psnr, result.ssim = image_quality(picture.rgb8_as_written(), sr.rgb8_as_written(), s)
  outputs = [] if out_target is None else [(out_target, encode_picture(out_target, sr))]
  return outputs + ([] if lr_target is None else [(lr_target, lr_data)])


def rescale_files(command: str, backend, jobs: Sequence[Job], out_dir=None, lr_dir=None,
                  tile: int = DEFAULT_TILE, overwrite: bool = False, metrics: bool = True,
                  on_tile: Callable[[int, int], None] | None = None,
                  codec: Codec | None = None) -> Iterator[Result]:
  """Runs `command` on each job and yields its Result; a failing file does not stop the rest.

  Args:
    command: "downscale" or "upscale" (write to `out_dir`), or "roundtrip" (HR to `out_dir`
      and LR to `lr_dir`, each only when given; PSNR/SSIM when `metrics`).
    backend: a `fgrn_tf.runtime.backends.Backend`.
    jobs: from `collect_inputs` (best through `preflight` first).
    tile: largest HR window the network sees (0: whole images).
    overwrite: replace existing outputs (never inputs).
    on_tile: progress inside an image, called with (tiles done, tiles in all).
    codec: how downscale and roundtrip store the LR (`fgrn_tf.data.codecs`; None or PNG: lossless,
      recording the HR size). A lossy one writes its own format (photo.jpg), and roundtrip
      upscales the decoded LR, as a receiver would. JPEG keeps no alpha and no HR size.

  Raises:
    TargetClash: before the first result, when two outputs would be one file.
    MissingHalfError: the backend (one .tflite file) lacks the half the command needs.
  """
  if command not in COMMANDS:
    raise ValueError(f"unknown command {command!r}; expected one of {COMMANDS}")
  check_targets(command, jobs, out_dir, lr_dir, codec)
  inputs = {job.source.resolve() for job in jobs}
  for job in jobs:
    start = time.perf_counter()
    result = Result(job.source)
    try:
      targets = dict(output_targets(command, job, out_dir, lr_dir, codec))
      out_target = targets.get("LR" if command == "downscale" else "HR")
      lr_target = targets.get("LR") if command == "roundtrip" else None
      _check_job_targets(list(targets.values()), inputs, job.source, overwrite)
      refusal = scale_mismatch(job.source, backend.scale) if command == "upscale" else None
      if refusal:
        raise _Skip(refusal)
      try:
        picture = Picture.read(job.source)
      except OSError as e:  # unreadable (permissions, I/O): decode names no file for these
        raise _Skip(f"{job.source}: cannot read ({os_reason(e)})") from None
      try:
        encoded = _outputs(command, backend, picture, result, out_target, lr_target, tile,
                           metrics, on_tile, codec)
      except MissingHalfError:
        raise  # a .tflite half asked for the other half: no file can succeed, stop here
      except images.ImageError:
        raise  # already one line naming its file
      except FGRNError as e:  # this image cannot be done (too small, a scale it does not fit)
        raise _Skip(f"{job.source}: {one_line(e)}") from None
      _write_all(encoded, job.source, overwrite)
      result.outputs.extend(target for target, _ in encoded)
    except (_Skip, images.ImageError) as e:
      result.error = str(e)
    except MemoryError:
      result.error = f"{job.source}: out of memory (try a smaller --tile)"
    result.seconds = time.perf_counter() - start
    yield result
