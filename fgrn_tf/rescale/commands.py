"""The rescale tool's commands (`fgrn info|models|downscale|upscale|roundtrip`) as a library:
checks in the order that fails fastest, the model load, progress, per-file lines and the summary.

`fgrn_tf.cli.rescale` turns its flags into a call of `run`, `info` or `models`; errors that
refuse the whole run are `fgrn_tf.errors.UsageError` (exit 2), and `run` returns 0, 1 (some files
failed) or 130 (interrupted). Usage and rules for users: docs/cli.md.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Sequence

from fgrn_tf import config, paper
from fgrn_tf.data import codecs
from fgrn_tf.errors import EXIT_INTERRUPTED, UsageError, one_line
from fgrn_tf.progress import Progress
from fgrn_tf.rescale import batch
from fgrn_tf.rescale.tiling import DEFAULT_TILE
from fgrn_tf.runtime import backends, resolve, shipped

EXIT_FAILED = 1  # some files failed (the others were processed)
INFO_SCALES = (2, 4)


def info(scale: int = 2, as_json: bool = False) -> int:
  """Prints the parameter counts of Gd, Gu, F and the total, against the paper's (Table 1).

  Args:
    scale: 2 or 4: the paper's preset of that scale.
    as_json: one JSON object instead of the table.
  """
  if scale not in INFO_SCALES:
    raise UsageError(f"--scale {scale}: info knows the paper's x2 and x4")
  # The network brings TensorFlow (seconds): only `info` needs it before a model is chosen.
  from fgrn_tf.models.fgrn import FGRN

  cfg = config.model_preset_for_scale(scale)
  model = FGRN(cfg)
  counts = {"Gd": model.downscaler.count_params(), "Gu": model.upscaler.count_params(),
            "F": model.flow.count_params() if model.flow is not None else 0,
            "total": model.count_params()}
  if as_json:
    print(json.dumps({"scale": scale, **counts}))
    return 0
  published = paper.PARAMETERS[scale]
  print(f"FGRN x{scale}: width {cfg.width}, Gd {cfg.down_blocks} ResBlocks, "
        f"Gu {cfg.up_blocks} ResBlocks, F {cfg.flow_cells} cells (growth {cfg.flow_growth})")
  for k, v in counts.items():
    print(f"  {k:6s} {v:>10,d}")
  print(f"  paper  {published:>10,.0f}  ({100 * (counts['total'] / published - 1):+.2f}%)")
  return 0


def models(as_json: bool = False) -> int:
  """Prints the bundled models (the names `--model` takes): scale, size, what each was trained
  for and its Set5 figures from its model card. Loads no model.

  Args:
    as_json: one JSON object (`folder` and a `models` list) instead of the table.
  """
  found = [shipped.describe(name) for name in shipped.names()]
  if as_json:
    print(json.dumps({"folder": str(shipped.folder()), "models": [
        {"name": m.name, "scale": m.scale, "size_bytes": m.size_bytes,
         "trained_for": m.trained_for,
         "set5": None if m.set5 is None else {"psnr": m.set5[0], "ssim": m.set5[1]}}
        for m in found]}))
    return 0
  print(f"{'name':12s}{'scale':>5s}{'size':>9s}  {'trained for':22s}Set5 PSNR / SSIM")
  for m in found:
    figures = "-" if m.set5 is None else f"{m.set5[0]:.2f} / {m.set5[1]:.4f}"
    print(f"{m.name:12s}{'x' + str(m.scale):>5s}{m.size_bytes / 1e6:>6.1f} MB  "
          f"{m.trained_for:22s}{figures}")
  print(f"{len(found)} bundled models in {shipped.folder()} (Set5: Y PSNR dB / SSIM of the "
        f"round trip, from each MODEL_CARD.md); use one with --model NAME")
  return 0


def _defined(values) -> list[float]:
  """The defined values (NaN: an image too small for the metric)."""
  return [v for v in values if not math.isnan(v)]


def _mean(values) -> float:
  return sum(values) / len(values) if values else math.nan


def quality_text(psnr: float, ssim: float) -> str:
  """`PSNR 38.21 dB  SSIM 0.9812`, with `n/a` for what an image is too small to have."""
  return (f"PSNR {psnr:.2f} dB  " if not math.isnan(psnr) else "PSNR n/a  ") + \
      (f"SSIM {ssim:.4f}" if not math.isnan(ssim) else "SSIM n/a (image too small)")


def mean_line(results: Sequence[batch.Result]) -> str:
  """`mean of N  PSNR ...  SSIM ...` when both means cover the same N images, else each mean
  says how many of the images it covers (an image too small has no SSIM, or neither)."""
  psnrs, ssims = _defined(r.psnr for r in results), _defined(r.ssim for r in results)
  if len(psnrs) == len(ssims):
    return f"mean of {len(psnrs)}  {quality_text(_mean(psnrs), _mean(ssims))}"
  n = len(results)
  psnr = f"PSNR {_mean(psnrs):.2f} dB" if psnrs else "PSNR n/a"
  ssim = f"SSIM {_mean(ssims):.4f}" if ssims else "SSIM n/a"
  return f"mean  {psnr} ({len(psnrs)} of {n} images)  {ssim} ({len(ssims)} of {n} images)"


def summary(command: str, done: int, failed: int, not_started: int, seconds: float) -> str:
  """The line that ends every run: `downscale: 9 done, 1 failed in 12.3 s (0.73 images/s)`;
  the rate only when something was done."""
  return (f"{command}: {done} done, {failed} failed"
          + (f", {not_started} not started (interrupted)" if not_started else "")
          + f" in {seconds:.1f} s"
          + (f" ({done / max(seconds, 1e-9):.2f} images/s)" if done else ""))


def check_options(command: str, inputs: Sequence[str], output_dir, lr_dir, scale: int | None,
                  tile: int, metrics: bool) -> None:
  """Refusals that need nothing but the command line."""
  if command not in batch.COMMANDS:
    raise UsageError(f"unknown command {command!r}: use info, models, "
                     f"{', '.join(batch.COMMANDS)}")
  if not inputs:
    raise UsageError(f"{command} needs INPUT files, folders or globs")
  if command != "roundtrip" and output_dir is None:
    raise UsageError(f"{command} needs -o OUTPUT_DIR")
  if command == "roundtrip" and lr_dir is None and output_dir is None and not metrics:
    raise UsageError("roundtrip with --nometrics and neither -o nor --lr_dir does nothing")
  if scale is not None and scale < 2:
    raise UsageError(f"--scale {scale}: a scale is a whole number of 2 or more "
                     f"(the shipped models are x2 and x4)")
  if tile < 0:
    raise UsageError(f"--tile {tile}: give the tile side in HR pixels, or 0 for whole images")


def check_output_dirs(output_dir, lr_dir) -> None:
  """Refuses output folders that cannot be made, or one folder for both HR and LR."""
  for flag, folder in (("-o", output_dir), ("--lr_dir", lr_dir)):
    if folder is None:
      continue
    blocker = batch.not_a_folder(folder)
    if blocker is not None:
      where = "" if blocker == pathlib.Path(folder) else f": {blocker}"
      what = "a file, not a folder" if blocker.is_file() else "not a folder"
      raise UsageError(f"{flag} {folder}{where} is {what}")
  if output_dir is not None and lr_dir is not None \
      and os.path.realpath(output_dir) == os.path.realpath(lr_dir):
    raise UsageError(f"-o and --lr_dir are one folder ({output_dir}): each LR image would "
                     f"replace its HR image; give --lr_dir a folder of its own")


LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")


def lossy_lr_note(command: str, jobs, backend) -> str | None:
  """One line for `upscale` of JPEG/WebP LRs by a model trained for lossless LRs only (its
  gain over bicubic mostly goes with the codec: docs/codecs.md), else None."""
  objective = getattr(backend, "objective", None)
  if command != "upscale" or objective is None or objective.trains_through_codec:
    return None
  lossy = [j for j in jobs if j.source.suffix.lower() in LOSSY_SUFFIXES]
  if not lossy:
    return None
  return (f"{len(lossy)} of {len(jobs)} LR files are JPEG/WebP, and this model was trained "
          "for lossless (PNG) LRs: expect much of its gain over bicubic to be lost "
          "(docs/codecs.md)")


def _error(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)


def run(command: str, inputs: Sequence[str], model=None, scale: int | None = None,
        output_dir=None, lr_dir=None, tile: int = DEFAULT_TILE, overwrite: bool = False,
        metrics: bool = True, codec: str | None = None, precision: str = "float32") -> int:
  """Runs downscale, upscale or roundtrip on `inputs` and reports each file and the run.

  Checks everything that needs no model (flags, output folders, inputs, targets) and reports
  it, then loads the model (seconds) only if some file is left to process.

  Args:
    command: "downscale", "upscale" or "roundtrip".
    inputs: files, folders and globs.
    model: what `resolve.model_spec` takes; None: the shipped model of `scale`.
    scale: the scale asked for (checked against the model's).
    output_dir: where the results go (roundtrip: the HR reconstructions, optional).
    lr_dir: roundtrip only: where its LR images go.
    tile, overwrite: as for `batch.rescale_files`.
    metrics: roundtrip only: PSNR/SSIM of each image and their mean, on stdout.
    codec: downscale and roundtrip: how the LR is stored (`fgrn_tf.data.codecs` spec, e.g.
      "jpeg:90"; None: PNG). roundtrip upscales the decoded LR and reports its size.
    precision: what a Keras model computes in (`fgrn_tf.models.precision`).

  Returns:
    0, EXIT_FAILED when some file failed, or EXIT_INTERRUPTED.

  Raises:
    UsageError: the run is refused as a whole (nothing was processed).
  """
  start = time.perf_counter()
  check_options(command, inputs, output_dir, lr_dir, scale, tile, metrics)
  if codec is not None and command == "upscale":
    raise UsageError("--codec is for downscale and roundtrip (upscale reads any format)")
  try:
    chosen = None if codec is None else codecs.parse(codec)
  except codecs.CodecError as e:
    raise UsageError(f"--codec: {e}") from None
  spec = resolve.model_spec(model, scale)
  peeked = resolve.peek(spec)
  if peeked is not None:
    resolve.check(spec, *peeked, scale, tile)
  check_output_dirs(output_dir, lr_dir)
  jobs, failures = batch.collect_inputs(inputs)
  known = scale if scale is not None else peeked[0] if peeked else None
  jobs, refused = batch.preflight(command, jobs, output_dir, lr_dir, overwrite=overwrite,
                                  scale=known, codec=chosen)
  failures += refused
  for f in failures:
    _error(f.error)
  if not jobs:  # nothing left to do: no need to wait for the model
    print(summary(command, 0, len(failures), 0, time.perf_counter() - start), file=sys.stderr)
    return EXIT_FAILED
  backend = resolve.open_model(spec, scale, tile=tile, precision=precision)
  note = lossy_lr_note(command, jobs, backend)
  if note:
    print(f"note: {note}", file=sys.stderr, flush=True)
  metrics = command == "roundtrip" and metrics
  progress = Progress(len(jobs), unit="images/s")
  current = ""

  def on_tile(done: int, total: int) -> None:
    if total > 1:
      progress.update(f"tile {done}/{total}  {current}")

  results = []
  interrupted = False
  try:
    it = batch.rescale_files(command, backend, jobs, output_dir, lr_dir, tile=tile,
                             overwrite=overwrite, metrics=metrics, on_tile=on_tile, codec=chosen)
    for job in jobs:
      current = str(job.source)
      progress.update(current)
      result = next(it)
      results.append(result)
      progress.clear()
      if result.error:
        _error(result.error)
      elif metrics:
        rate = "" if chosen is None else f"  LR {chosen.spec} {result.lr_bytes} bytes"
        print(f"{job.source}  {quality_text(result.psnr, result.ssim)}{rate}", flush=True)
      progress.advance(str(job.source), ok=not result.error)
  except KeyboardInterrupt:
    interrupted = True
  except backends.MissingHalfError as e:
    progress.clear()
    raise UsageError(f"model {resolve.describe(spec)}: {one_line(e)}") from None
  progress.clear()
  ok = [r for r in results if not r.error]
  failed = len(failures) + len(results) - len(ok)
  if metrics and ok:
    print(mean_line(ok))
  print(summary(command, len(ok), failed, len(jobs) - len(results) if interrupted else 0,
                progress.elapsed()), file=sys.stderr)
  if interrupted:
    return EXIT_INTERRUPTED
  return EXIT_FAILED if failed else 0
