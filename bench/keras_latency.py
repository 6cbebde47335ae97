"""Latency of the Keras model's uint8 downscale, upscale and round trip at several HR sizes.

One process per thread count (TensorFlow fixes its thread pools when it starts):

  python -m bench.keras_latency --threads 2 --scales 2,4 --sizes 256,512,1024
"""

from __future__ import annotations

import sys
import time

from bench import common
from fgrn_tf import files

# Timed runs per HR side: the big images take seconds each, and the full benchmark has to
# finish in ~15 minutes on 2 cores.
DEFAULT_RUNS = {256: 5, 512: 3, 1024: 2}


def measure(scale: int, sizes, threads: int, quick: bool, runs: int | None = None,
            warmup: int = 1) -> list[dict]:
  """Times `KerasBackend.downscale`, `.upscale` and both in a row on random uint8 images.

  Args:
    scale: 2 or 4 (the paper-sized network, or the tiny smoke one if `quick`).
    sizes: HR sides to time (square images, multiples of `scale`).
    threads: recorded with the rows (the caller's process was configured with it).
    quick: tiny network.
    runs: timed runs per size (default: `DEFAULT_RUNS`, 3 for other sizes).
    warmup: untimed runs per size first (tracing, oneDNN primitive creation).

  Returns:
    Rows `{"scale", "size", "threads", "op": "downscale"|"upscale"|"roundtrip", "median",
    "min", "max", "runs"}`, seconds per image.
  """
  import numpy as np

  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.runtime.backends import KerasBackend

  backend = KerasBackend(FGRN(common.bench_model_config(scale, quick)))
  rng = np.random.default_rng(0)
  rows = []
  tag = f"latency x{scale} {threads} thread(s)"
  for size in sizes:
    hr = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    for _ in range(warmup):
      backend.upscale(backend.downscale(hr))
    down, up = [], []
    n = runs or DEFAULT_RUNS.get(size, 3)
    for _ in range(n):
      # Round trip = this downscale followed by the upscale of its output, timed apart.
      start = time.perf_counter()
      lr = backend.downscale(hr)
      mid = time.perf_counter()
      backend.upscale(lr)
      down.append(mid - start)
      up.append(time.perf_counter() - mid)
    trip = [d + u for d, u in zip(down, up, strict=True)]
    for op, times in (("downscale", down), ("upscale", up), ("roundtrip", trip)):
      rows.append({"scale": scale, "size": size, "threads": threads, "op": op,
                   **common.summarize(times)})
    common.progress(tag, f"{size}x{size}: down {_fmt(down)}, up {_fmt(up)}, "
                         f"round trip {_fmt(trip)} (median [min, max] of {n})")
  return rows


def _fmt(times) -> str:
  s = common.summarize(times)
  return f"{s['median']:.3f} s [{s['min']:.3f}, {s['max']:.3f}]"


def main(argv=None) -> int:
  parser = common.model_bench_parser(__doc__)
  parser.set_defaults(threads=2)
  parser.add_argument("--sizes", default="256,512,1024", help="comma-separated HR sides")
  parser.add_argument("--runs", type=int, default=None, help="timed runs per size")
  args = parser.parse_args(argv)
  common.announce("keras_latency")
  common.configure_tf(threads=args.threads)
  rows = []
  for scale in (int(s) for s in args.scales.split(",")):
    rows += measure(scale, [int(s) for s in args.sizes.split(",")], args.threads, args.quick,
                    args.runs)
  if args.json_out:
    files.write_json(args.json_out, {"rows": rows})
  return 0


if __name__ == "__main__":
  sys.exit(main())
