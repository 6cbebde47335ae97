"""`python -m fgrn_tf {info,downscale,upscale,roundtrip} ...`: the command-line tool (thin; the
work is in `fgrn_tf.inference`). Usage and rules: docs/cli.md."""

from __future__ import annotations

import argparse
import json
import math
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
  elsewhere one line per finished file."""

  def __init__(self, total: int, stream=None, width: int = 24):
    self.total, self.done, self.width = total, 0, width
    self.stream = stream or sys.stderr
    self.tty = self.stream.isatty()
    self.start = time.perf_counter()
    self.current = ""
    self._shown = False

  def rate(self) -> float:
    return self.done / max(time.perf_counter() - self.start, 1e-9)

  def begin(self, name: str) -> None:
    self.current = name
    self._draw("")

  def tile(self, done: int, total: int) -> None:
    if total > 1:
      self._draw(f" tile {done}/{total}")

  def file_done(self, name: str) -> None:
    self.done += 1
    if self.tty:
      self._draw("")
    else:
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


def _mean(values) -> float:
  """Mean of the defined values (NaN: SSIM of an image too small for its window)."""
  values = [v for v in values if not math.isnan(v)]
  return sum(values) / len(values) if values else math.nan


def _quality(psnr: float, ssim: float) -> str:
  return (f"PSNR {psnr:.2f} dB  " if not math.isnan(psnr) else "PSNR n/a  ") + \
      (f"SSIM {ssim:.4f}" if not math.isnan(ssim) else "SSIM n/a (image too small)")


def _load_backend(args):
  from fgrn_tf import backends, inference

  if args.model:
    path = args.model
  else:
    path = inference.default_model_path(args.scale or 2)
    if not path.exists():
      raise UsageError(f"no --model given and no shipped model at {path}: train one with "
                       f"`python train_main.py` and pass its workdir as --model")
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


def _rescale(args) -> int:
  from fgrn_tf import inference
  from fgrn_tf.backends import MissingHalfError

  if args.command != "roundtrip" and args.output is None:
    raise UsageError(f"{args.command} needs -o OUTPUT_DIR")
  if args.command == "roundtrip" and args.lr_dir is None and args.output is None \
      and args.no_metrics:
    raise UsageError("roundtrip with --no-metrics and neither -o nor --lr-dir does nothing")
  backend = _load_backend(args)
  jobs, failures = inference.collect_inputs(args.inputs)
  metrics = args.command == "roundtrip" and not args.no_metrics
  if metrics and not inference.metrics_available():
    print("note: PSNR/SSIM need fgrn_tf.metrics.psnr_ssim, which is not installed; skipping them",
          file=sys.stderr)
    metrics = False
  for f in failures:
    print(f"error: {f.error}", file=sys.stderr)
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
      progress.file_done(str(job.source))
  except KeyboardInterrupt:
    interrupted = True
  except MissingHalfError as e:
    progress.clear()
    raise UsageError(f"model {args.model}: {inference.one_line(e)}") from None
  progress.clear()
  ok = [r for r in results if not r.error]
  failed = len(failures) + len(results) - len(ok)
  seconds = time.perf_counter() - progress.start
  if metrics and ok:
    print(f"mean of {len(ok)}  {_quality(_mean(r.psnr for r in ok), _mean(r.ssim for r in ok))}")
  summary = (f"{args.command}: {len(ok)} done, {failed} failed"
             + (f", {len(jobs) - len(results)} not started (interrupted)" if interrupted else "")
             + f" in {seconds:.1f} s ({len(ok) / max(seconds, 1e-9):.2f} images/s)")
  print(summary, file=sys.stderr)
  if interrupted:
    return EXIT_INTERRUPTED
  return EXIT_FAILED if failed else 0


def _add_rescale_parser(sub, name: str, help_text: str):
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
  from fgrn_tf import tf_env

  tf_env.set_defaults()  # before the subcommand imports TensorFlow
  import cv2

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
