"""Peak memory of a command-line round trip against image size, tiled and untiled.

Each case runs `python -m fgrn_tf roundtrip IMAGE --model WORKDIR --tile T -o OUT` in a
subprocess under `/usr/bin/time -v` and reads its "Maximum resident set size". Images are
synthetic (smooth colour waves plus noise), square, of 1, 4, 16 and 64 megapixels by default;
the model is a preset's network with untrained weights unless `--workdir` names a trained one
(memory and time do not depend on the weights).

  .venv/bin/python -m bench.memory_vs_size                  # paper x2, 1-64 MP, tile 0 and 1024
  .venv/bin/python -m bench.memory_vs_size --quick          # smoke model, small images, < 1 min
  .venv/bin/python -m bench.memory_vs_size --sizes 1,4 --tiles 0,512,1024 --timeout 900
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from bench import common

TIME = "/usr/bin/time"


def synthetic_image(side: int, seed: int = 0, rows: int = 512):
  """uint8 RGB `[side, side, 3]`: colour waves plus Gaussian noise, built a block of rows at a
  time (this process stays small next to the one measured)."""
  import numpy as np

  rng = np.random.default_rng(seed)
  out = np.empty((side, side, 3), np.uint8)
  x = np.arange(side, dtype=np.float32)[None, :]
  for a in range(0, side, rows):
    y = np.arange(a, min(a + rows, side), dtype=np.float32)[:, None]
    block = np.stack([128 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0),
                      128 + 90 * np.sin((x + y) / 71.0),
                      128 + 80 * np.cos(x / 19.0 + y / 29.0)], axis=-1)
    block += rng.normal(0, 6, block.shape).astype(np.float32)
    out[a:a + len(y)] = np.clip(block, 0, 255)
  return out


def run_measured(args: list[str], timeout: float | None) -> tuple[int | None, float, str]:
  """Runs a command under `/usr/bin/time -v`.

  Returns:
    (peak RSS in KiB or None, wall seconds, status: "ok", "exit N" or "timeout").
  """
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(common.ROOT)}
  start = time.perf_counter()
  try:
    proc = subprocess.run([TIME, "-v", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=common.ROOT)
  except subprocess.TimeoutExpired:
    return None, time.perf_counter() - start, "timeout"
  seconds = time.perf_counter() - start
  match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
  status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
  if proc.returncode != 0:
    tail = [line for line in proc.stderr.splitlines() if line.startswith("error")][:1]
    status += f" ({tail[0]})" if tail else ""
  return (int(match.group(1)) if match else None), seconds, status


def predicted_mib(points: list[tuple[float, float]], mp: float) -> float | None:
  """Peak MiB at `mp` megapixels, extrapolated linearly from the two largest measured sizes."""
  if len(points) < 2:
    return None
  (x0, y0), (x1, y1) = sorted(points)[-2:]
  return y1 + (y1 - y0) / (x1 - x0) * (mp - x1) if x1 != x0 else None


def available_mib() -> float:
  """MemAvailable of /proc/meminfo in MiB (inf where there is none): an untiled case predicted
  to need more is skipped rather than run into the OOM killer."""
  try:
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) / 1024
  except OSError:
    pass
  return math.inf


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--preset", default="x2", help="network whose untrained weights are used")
  parser.add_argument("--workdir", help="a trained workdir instead of --preset")
  parser.add_argument("--sizes", default="1,4,16,64", help="megapixels, comma-separated")
  parser.add_argument("--tiles", default="0,1024", help="--tile values (0: untiled)")
  parser.add_argument("--timeout", type=float, default=None, help="seconds per case")
  parser.add_argument("--quick", action="store_true",
                      help="smoke model, one 0.25 MP image, tile 0 and 256: under a minute")
  parser.add_argument("--tmp", help="folder for images and model (default: a temporary one)")
  args = parser.parse_args(argv)
  common.announce("memory_vs_size")
  if not os.access(TIME, os.X_OK):
    print(f"error: {TIME} is needed (apt-get install time)", file=sys.stderr)
    return 2
  if args.quick:
    args.preset, args.sizes, args.tiles = "smoke", "0.25", "0,256"
  sizes = [float(v) for v in args.sizes.split(",")]
  tiles = [int(v) for v in args.tiles.split(",")]

  with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
    tmp = pathlib.Path(tmp)
    workdir = args.workdir
    if workdir is None:
      from fgrn_tf import tf_env

      tf_env.set_defaults()
      from fgrn_tf import workdir as wd
      from fgrn_tf.config import preset
      from fgrn_tf.models.fgrn import FGRN

      workdir = tmp / "model"
      wd.write_experiment(workdir, preset(args.preset))
      FGRN(preset(args.preset).model).save_weights(workdir / wd.BEST_WEIGHTS)
    from fgrn_tf.data import images

    python = sys.executable
    model = args.workdir or f"{args.preset} (untrained weights)"
    if args.quick:
      print(f"model: {model}")
    else:  # what the interpreter, TF and the package take before any image
      base_kib, base_s, _ = run_measured(
          [python, "-c", "import fgrn_tf.rescale.batch"], args.timeout)
      print(f"model: {model}; `import fgrn_tf` alone: {base_kib / 1024:.0f} MiB, {base_s:.1f} s")
    print(f"{'MP':>6} {'size':>11} {'tile':>6} {'peak RSS MiB':>13} {'seconds':>8}  status")
    measured = {}  # tile -> [(megapixels, peak MiB)] of the cases that ran
    for mp in sizes:
      side = int(round(math.sqrt(mp * 1e6)))
      image = tmp / f"mp{mp:g}.png"
      images.write_image(image, synthetic_image(side))
      for tile in tiles:
        out = tmp / f"out_{mp:g}_{tile}"
        guess = predicted_mib(measured.get(tile, []), mp)
        if guess is not None and guess > 0.9 * available_mib():
          kib, seconds, status = None, 0.0, (f"skipped: ~{guess:.0f} MiB predicted from the "
                                             f"smaller sizes, {available_mib():.0f} available")
        else:
          kib, seconds, status = run_measured(
              [python, "-m", "fgrn_tf", "roundtrip", str(image), "--model", str(workdir),
               "--tile", str(tile), "-o", str(out)], args.timeout)
        if kib and status == "ok":
          measured.setdefault(tile, []).append((mp, kib / 1024))
        rss = f"{kib / 1024:.0f}" if kib else "-"
        print(f"{mp:>6g} {f'{side}x{side}':>11} {tile or 'none':>6} {rss:>13} {seconds:>8.1f}"
              f"  {status}", flush=True)
      image.unlink()
  return 0


if __name__ == "__main__":
  sys.exit(main())
