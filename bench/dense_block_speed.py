"""CPU-seconds and wall time of the flow's DenseBlock (concat vs per-source) and what it buys.

Measures, in one fresh process per setting (TF_ENABLE_ONEDNN_OPTS must be set before TF loads):
the dense blocks of one flow cell at the LR size of a 512x512 image, the uint8 downscale and
upscale of a 512x512 image and one training step (batch 4, 96x96 HR), for x2 and x4 with the
paper-sized networks, each with the concatenating DenseBlock ("old", IRN's layout run as
written) and the per-source one ("new", fgrn_tf.models.blocks), oneDNN off (TF's default on
this AMD CPU) and on. CPU-seconds are the process's user+sys time, which other processes on a
shared machine disturb much less than wall time.

  python -m bench.dense_block_speed            # ~15 minutes on an idle 2-core CPU
  python -m bench.dense_block_speed --quick    # tiny networks, x2 only: checks the code runs
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import resource
import statistics
import sys
import time

from bench import common
from fgrn_tf import files

SETTINGS = {  # name -> (dense block formulation, TF_ENABLE_ONEDNN_OPTS)
    "old": ("old", "0"), "new": ("new", "0"), "old+onednn": ("old", "1"),
    "new+onednn": ("new", "1")}
RESULT_TAG = "RESULT "


def cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
  return usage.ru_utime + usage.ru_stime


def time_cpu(fn, runs: int, warmup: int = 1) -> dict:
  """Median CPU-seconds and wall seconds of `runs` calls of `fn` after `warmup` ones."""
  for _ in range(warmup):
    fn()
  cpu, wall = [], []
  for _ in range(runs):
    c, w = cpu_seconds(), time.perf_counter()
    fn()
    cpu.append(cpu_seconds() - c)
    wall.append(time.perf_counter() - w)
  return {"cpu": statistics.median(cpu), "cpu_min": min(cpu), "wall": statistics.median(wall),
          "runs": runs}


def concat_call(block, x):
  """IRN's concatenating formulation of `block` (what DenseBlock.call did before)."""
  import tensorflow as tf

  features = x
  for conv in block.convs:
    y = tf.nn.leaky_relu(conv(features), alpha=0.2)
    features = tf.concat([features, y], axis=-1)
  return block.out(features)


def worker(dense: str, quick: bool, runs: int) -> list[dict]:
  """Runs every measurement in this process; returns rows {what, scale, cpu, wall, ...}."""
  tf = common.configure_tf()
  import keras
  import numpy as np

  from bench.train_modes import make_dataset
  from fgrn_tf.models import blocks
  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.runtime.backends import KerasBackend

  if dense == "old":
    blocks.DenseBlock.call = concat_call
  rng = np.random.default_rng(0)
  hr_side, batch, patch = (64, 2, 32) if quick else (512, 4, 96)
  rows = []

  def record(what, scale, result):
    rows.append({"what": what, "scale": scale, **result})
    common.progress(f"{dense} {what} x{scale}",
                    f"cpu {result['cpu']:.3f} s (min {result['cpu_min']:.3f}), "
                    f"wall {result['wall']:.3f} s")

  for scale in (2,) if quick else (2, 4):
    model = FGRN(common.bench_model_config(scale, quick))
    cell = model.flow.cells[0]
    lr_side = hr_side // scale
    x1 = tf.constant(rng.uniform(size=(1, lr_side, lr_side, 1)), tf.float32)
    x2 = tf.constant(rng.uniform(size=(1, lr_side, lr_side, 2)), tf.float32)
    # b and p read the 1-channel pivot, a the 2 other channels (FlowCell).
    blocks_fn = tf.function(lambda cell=cell, x1=x1, x2=x2: (cell.a(x2), cell.b(x1), cell.p(x1)))
    record("3 dense blocks", scale, time_cpu(blocks_fn, runs=3 * runs))
    backend = KerasBackend(model)
    hr = rng.integers(0, 256, (1, hr_side, hr_side, 3), dtype=np.uint8)
    lr = backend.downscale(hr)
    record("downscale", scale, time_cpu(functools.partial(backend.downscale, hr), runs))
    record("upscale", scale, time_cpu(functools.partial(backend.upscale, lr), runs))
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    data = next(iter(make_dataset(batch, patch)))
    step = tf.function(model.train_step)
    record("train step", scale, time_cpu(functools.partial(step, data), runs))
  return rows


def main(argv=None) -> int:
  parser = common.script_parser(__doc__)
  parser.add_argument("--quick", action="store_true", help="tiny networks and images")
  parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement")
  parser.add_argument("--settings", default=",".join(SETTINGS),
                      help=f"comma-separated, from {','.join(SETTINGS)}")
  parser.add_argument("--json_out", type=pathlib.Path, help="write the rows here as JSON")
  parser.add_argument("--worker", choices=["old", "new"], help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  common.announce("dense_block_speed")
  runs = args.runs or (1 if args.quick else 3)
  if args.worker:
    print(RESULT_TAG + json.dumps(worker(args.worker, args.quick, runs)), flush=True)
    return 0
  settings = args.settings.split(",")
  unknown = sorted(set(settings) - set(SETTINGS))
  if unknown:
    parser.error(f"unknown settings {unknown}; choose from {sorted(SETTINGS)}")
  info = common.machine_info()
  common.progress("dense_block_speed", f"{info['cpu']}, {info['usable_cores']} cores, "
                                       f"load average {info['loadavg']}")
  table = {}
  for name in settings:
    dense, onednn = SETTINGS[name]
    cmd = ["--worker", dense, "--runs", str(runs)] + (["--quick"] if args.quick else [])
    code, text = common.run_script(pathlib.Path(__file__), cmd, timeout=3600, tag=name,
                                   env={"TF_ENABLE_ONEDNN_OPTS": onednn})
    lines = [line for line in text.splitlines() if line.startswith(RESULT_TAG)]
    if code != 0 or not lines:
      print(f"setting {name} failed (exit code {code})", file=sys.stderr)
      return 1
    table[name] = json.loads(lines[-1][len(RESULT_TAG):])
  info["loadavg_end"] = common.load_average()
  print(f"\nCPU-seconds (wall seconds), median; load average {info['loadavg']} -> "
        f"{info['loadavg_end']}")
  keys = [(r["what"], r["scale"]) for r in table[settings[0]]]
  print(f"{'':22}" + "".join(f"{name:>20}" for name in settings))
  for what, scale in keys:
    cells = []
    for name in settings:
      row = next(r for r in table[name] if (r["what"], r["scale"]) == (what, scale))
      cells.append(f"{row['cpu']:.3f} ({row['wall']:.3f})")
    print(f"{what + f' x{scale}':22}" + "".join(f"{c:>20}" for c in cells))
  if args.json_out:
    files.write_json(args.json_out, {"machine": info, "settings": table})
  return 0


if __name__ == "__main__":
  sys.exit(main())
