"""`python -m fgrn_tf {info,downscale,upscale,roundtrip} ...`: the command-line tool (thin; the
work is in `fgrn_tf.inference`). Usage and rules: docs/cli.md."""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time

EXIT_FAILED = 1  # some files failed (the others were processed)
EXIT_USAGE = 2  # bad arguments or no usable model: nothing was processed
EXIT_INTERRUPTED = 130


class UsageError(Exception):
  """A problem with the command as a whole, told in one line."""


def _info(args) -> int:
  from fgrn_tf import config
  from fgrn_tf.models.fgrn import FGRN

  cfg = config.model_preset_for_scale(args.scale)
  model = FGRN(cfg)
  counts = {"Gd": model.downscaler.count_params(), "Gu": model.upscaler.count_params(),
            "F": model.flow.count_params() if model.flow is not None else 0,
            "total": model.count_params()}
  if args.json:
    print(json.dumps({"scale": args.scale, **counts}))
  else:
    paper = {2: 1.33e6, 4: 3.35e6}[args.scale]
    print(f"FGRN x{args.scale}: width {cfg.width}, Gd {cfg.down_blocks} ResBlocks, "
          f"Gu {cfg.up_blocks} ResBlocks, F {cfg.flow_cells} cells (growth {cfg.flow_growth})")
    for k, v in counts.items():
      print(f"  {k:6s} {v:>10,d}")
    print(f"  paper  {paper:>10,.0f}  ({100 * (counts['total'] / paper - 1):+.2f}%)")
  return 0


class Progress:
  """A one-line progress bar on a terminal (files, images/s, tiles of the current image);
  elsewhere one line per file that succeeded (a failure has its own `error:` line)."""

  def __init__(self, total: int, stream=None, width: int = 24):
    self.total, self.done, self.ok, self.width = total, 0, 0, width
    self.stream = stream or sys.stderr
    self.tty = self.stream.isatty()
    self.start = time.perf_counter()
    self.current = ""
    self._shown = False

  def rate(self) -> float:
    """Images made per second: failed files made none."""
    return self.ok / max(time.perf_counter() - self.start, 1e-9)

  def begin(self, name: str) -> None:
    self.current = name
    self._draw("")

  def tile(self, done: int, total: int) -> None:
    if total > 1:
      self._draw(f" tile {done}/{total}")

  def file_done(self, name: str, ok: bool = True) -> None:
    self.done += 1
    self.ok += ok
    if self.tty:
      self._draw("")
    elif ok:
      print(f"[{self.done}/{self.total}] {name}  {self.rate():.2f} images/s", file=self.stream,
            flush=True)

  def clear(self) -> None:
    """Removes the bar so that a line can be printed; it comes back with the next update."""
    if self.tty and self._shown:
      self.stream.write("\r\033[K")
      self.stream.flush()
      self._shown = False

  def _draw(self, extra: str) -> None:
    if not self.tty:
      return
    filled = self.width * self.done // max(self.total, 1)
    bar = "#" * filled + "." * (self.width - filled)
    self.stream.write(f"\r\033[K[{bar}] {self.done}/{self.total}  {self.rate():.2f} images/s"
                      f"{extra}  {self.current}"[:200])
    self.stream.flush()
    self._shown = True


def _defined(values) -> list[float]:
  """The defined values (NaN: an image too small for the metric)."""
  return [v for v in values if not math.isnan(v)]


def _mean(values) -> float:
  return sum(values) / len(values) if values else math.nan


def _quality(psnr: float, ssim: float) -> str:
  return (f"PSNR {psnr:.2f} dB  " if not math.isnan(psnr) else "PSNR n/a  ") + \
      (f"SSIM {ssim:.4f}" if not math.isnan(ssim) else "SSIM n/a (image too small)")


def _mean_line(results) -> str:
  """`mean of N  PSNR ...  SSIM ...` when both means cover the same N images, else each mean
  says how many of the images it covers (an image too small has no SSIM, or neither)."""
  psnrs, ssims = _defined(r.psnr for r in results), _defined(r.ssim for r in results)
  if len(psnrs) == len(ssims):
    return f"mean of {len(psnrs)}  {_quality(_mean(psnrs), _mean(ssims))}"
  n = len(results)
  psnr = f"PSNR {_mean(psnrs):.2f} dB" if psnrs else "PSNR n/a"
  ssim = f"SSIM {_mean(ssims):.4f}" if ssims else "SSIM n/a"
  return f"mean  {psnr} ({len(psnrs)} of {n} images)  {ssim} ({len(ssims)} of {n} images)"


def _check_flags(args) -> None:
  """Refusals that need nothing but the command line."""
  if args.command != "roundtrip" and args.output is None:
    raise UsageError(f"{args.command} needs -o OUTPUT_DIR")
  if args.command == "roundtrip" and args.lr_dir is None and args.output is None \
      and args.no_metrics:
    raise UsageError("roundtrip with --no-metrics and neither -o nor --lr-dir does nothing")
  if args.scale is not None and args.scale < 2:
    raise UsageError(f"--scale {args.scale}: a scale is a whole number of 2 or more "
                     f"(the shipped models are x2 and x4)")
  if args.tile < 0:
    raise UsageError(f"--tile {args.tile}: give the tile side in HR pixels, or 0 for whole "
                     f"images")


def _model_path(args) -> pathlib.Path:
  from fgrn_tf import inference

  if args.model:
    return pathlib.Path(args.model)
  path = inference.default_model_path(args.scale or 2)
  if not path.exists():
    raise UsageError(f"no --model given and no shipped model at {path}: train one with "
                     f"`python train_main.py` and pass its workdir as --model")
  return path


def _check_model(path, scale: int, config, asked: int | None, tile: int) -> None:
  """The refusals of a model's scale and tile minimum; `config` None: not known."""
  from fgrn_tf import inference

  if asked is not None and scale != asked:
    raise UsageError(f"model {path} is x{scale} but --scale {asked} was asked for")
  if config is not None and tile and tile < inference.min_tile_for(scale, config):
    raise UsageError(f"--tile {tile} is too small for this model (x{scale}): use at least "
                     f"{inference.min_tile_for(scale, config)}, or 0 for whole images")


def _check_output_dirs(args) -> None:
  from fgrn_tf import inference

  for flag, folder in (("-o", args.output), ("--lr-dir", args.lr_dir)):
    if folder is None:
      continue
    blocker = inference.not_a_folder(folder)
    if blocker is not None:
      where = "" if blocker == pathlib.Path(folder) else f": {blocker}"
      what = "a file, not a folder" if blocker.is_file() else "not a folder"
      raise UsageError(f"{flag} {folder}{where} is {what}")
  if args.output is not None and args.lr_dir is not None \
      and os.path.realpath(args.output) == os.path.realpath(args.lr_dir):
    raise UsageError(f"-o and --lr-dir are one folder ({args.output}): each LR image would "
                     f"replace its HR image; give --lr-dir a folder of its own")


def _load_backend(args, path):
  from fgrn_tf import backends, inference

  try:
    backend = backends.load_backend(path)
  except Exception as e:  # missing, corrupt or foreign files: one line, not a traceback
    raise UsageError(f"cannot load model {path}: {inference.one_line(e)}") from None
  if args.scale is not None and backend.scale != args.scale:
    raise UsageError(f"model {path} is x{backend.scale} but --scale {args.scale} was asked for")
  if args.tile and args.tile < inference.min_tile(backend):
    raise UsageError(f"--tile {args.tile} is too small for this model (x{backend.scale}): use "
                     f"at least {inference.min_tile(backend)}, or 0 for whole images")
  return backend


def _summary(command: str, done: int, failed: int, not_started: int, seconds: float) -> str:
  return (f"{command}: {done} done, {failed} failed"
          + (f", {not_started} not started (interrupted)" if not_started else "")
          + f" in {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} images/s)")


def _rescale(args) -> int:
  """Checks everything that needs no model (flags, output folders, inputs, targets) and reports
  it, then loads the model (seconds) only if some file is left to process."""
  from fgrn_tf import inference
  from fgrn_tf.backends import MissingHalfError

  start = time.perf_counter()
  _check_flags(args)
  path = _model_path(args)
  peeked = inference.peek_model(path)
  if peeked is not None:
    _check_model(path, *peeked, args.scale, args.tile)
  _check_output_dirs(args)
  jobs, failures = inference.collect_inputs(args.inputs)
  scale = args.scale if args.scale is not None else peeked[0] if peeked else None
  try:
    jobs, refused = inference.preflight(args.command, jobs, args.output, args.lr_dir,
                                        overwrite=args.overwrite, scale=scale)
  except inference.TargetClash as e:
    raise UsageError(str(e)) from None
  failures += refused
  for f in failures:
    print(f"error: {f.error}", file=sys.stderr, flush=True)
  if not jobs:  # nothing left to do: no need to wait for the model
    print(_summary(args.command, 0, len(failures), 0, time.perf_counter() - start),
          file=sys.stderr)
    return EXIT_FAILED
  backend = _load_backend(args, path)
  metrics = args.command == "roundtrip" and not args.no_metrics
  if metrics and not inference.metrics_available():
    print("note: PSNR/SSIM need fgrn_tf.metrics.psnr_ssim, which is not installed; skipping them",
          file=sys.stderr)
    metrics = False
  progress = Progress(len(jobs))
  results = []
  interrupted = False
  try:
    it = inference.rescale_files(args.command, backend, jobs, args.output, args.lr_dir,
                                 tile=args.tile, overwrite=args.overwrite, metrics=metrics,
                                 on_tile=progress.tile)
    for job in jobs:
      progress.begin(str(job.source))
      result = next(it)
      results.append(result)
      progress.clear()
      if result.error:
        print(f"error: {result.error}", file=sys.stderr, flush=True)
      elif metrics:
        print(f"{job.source}  {_quality(result.psnr, result.ssim)}", flush=True)
      progress.file_done(str(job.source), ok=not result.error)
  except KeyboardInterrupt:
    interrupted = True
  except MissingHalfError as e:
    progress.clear()
    raise UsageError(f"model {path}: {inference.one_line(e)}") from None
  progress.clear()
  ok = [r for r in results if not r.error]
  failed = len(failures) + len(results) - len(ok)
  seconds = time.perf_counter() - progress.start
  if metrics and ok:
    print(_mean_line(ok))
  print(_summary(args.command, len(ok), failed, len(jobs) - len(results) if interrupted else 0,
                 seconds), file=sys.stderr)
  if interrupted:
    return EXIT_INTERRUPTED
  return EXIT_FAILED if failed else 0


def _add_rescale_parser(sub, name: str, help_text: str):
  from fgrn_tf.data.images import pixel_limit
  from fgrn_tf.inference import DEFAULT_TILE

  p = sub.add_parser(name, help=help_text, description=help_text)
  p.add_argument("inputs", nargs="+", metavar="INPUT",
                 help="image files, folders (searched recursively) and globs ('photos/*.png')")
  p.add_argument("--model", help="training workdir, exported folder, SavedModel or .tflite file "
                 "(default: the shipped models/fgrn_x{scale}/)")
  p.add_argument("--scale", type=int, default=None,
                 help="the scale asked for: picks the shipped model (default 2) and is checked "
                 "against --model")
  p.add_argument("-o", "--output", metavar="OUTPUT_DIR", required=name != "roundtrip",
                 help="folder for the results, named like their inputs (created if missing)"
                 + ("; roundtrip: the HR reconstructions" if name == "roundtrip" else ""))
  p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                 help="largest piece of HR image, in pixels per side, the network sees at once "
                 "(tiles overlap; the result does not change); 0: whole images")
  p.add_argument("--overwrite", action="store_true",
                 help="replace existing outputs (inputs are never replaced)")
  p.add_argument("--max-pixels", type=pixel_limit, metavar="N",
                 help="refuse input files of more pixels than this (default: $FGRN_MAX_PIXELS, "
                 "else 2**27 = 134 million); the decoder holds a whole image in memory")
  if name == "roundtrip":
    p.add_argument("--lr-dir", metavar="DIR", help="also write the LR images here")
    p.add_argument("--no-metrics", action="store_true", help="skip PSNR/SSIM")
  else:
    p.set_defaults(lr_dir=None, no_metrics=True)
  p.set_defaults(func=_rescale)
  return p


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m fgrn_tf", description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  info = sub.add_parser("info", help="parameter counts of Gd, Gu, F and the total")
  info.add_argument("--scale", type=int, default=2, choices=(2, 4))
  info.add_argument("--json", action="store_true", help="print one JSON object")
  info.set_defaults(func=_info)
  _add_rescale_parser(sub, "downscale", "HR images -> LR images (ceil(H/s) x ceil(W/s))")
  _add_rescale_parser(sub, "upscale", "LR images -> HR images (back to the recorded size)")
  _add_rescale_parser(sub, "roundtrip", "downscale then upscale; PSNR/SSIM against the input")
  args = parser.parse_args(argv)
  from fgrn_tf.data import images

  images.set_max_pixels(getattr(args, "max_pixels", None), flag="--max-pixels")  # before Keras
  from fgrn_tf import tf_env

  tf_env.set_defaults()  # before the subcommand imports TensorFlow
  import cv2  # after fgrn_tf.data.images set OpenCV's pixel ceiling (read once, at import)

  cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our one line per bad file
  try:
    return args.func(args)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_USAGE
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


if __name__ == "__main__":
  sys.exit(main())
