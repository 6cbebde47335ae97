"""Training steps/s of FGRN x2 and x4 at batch 4 with 96x96 and 144x144 HR patches, fed by the
real input pipeline and by a constant batch (the pipeline must not be the bottleneck).

A benchmark, not a test: it prints a table (and the load average, since the CPU may be shared).
    .venv/bin/python -m bench.train_throughput [--data_dirs DIR,...] [--steps 10] [--quick]
`--quick` runs the smoke network on 32x32 patches for a few steps (under a minute) to check
that the script works; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench import common
from fgrn_tf import files


def _clock():
  """A Keras callback recording the wall and CPU time at the end of each training batch."""
  import keras

  class Clock(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.times, self.cpu = [], []

    def on_train_batch_end(self, batch, logs=None):
      self.times.append(time.perf_counter())
      self.cpu.append(time.process_time())

  return Clock()


def steps_per_second(model_cfg, image_set, patch, batch, constant, steps, warmup):
  """(steps/s, CPU-seconds per step) over `steps` steps after `warmup` (tracing, caches).

  On a shared CPU the wall-clock rate depends on the other load; `ncpu / CPU-seconds per step`
  bounds what the machine would do alone.
  """
  import tensorflow as tf

  from fgrn_tf import config
  from fgrn_tf.data import pipeline
  from fgrn_tf.train import trainer

  exp = config.Experiment(model_cfg, config.TrainConfig(batch_size=batch, patch_size=patch))
  model = trainer.build_model(exp, tf.distribute.get_strategy())
  ds = pipeline.training_dataset(image_set, model_cfg.scale, batch, patch, seed=0)
  if constant:
    ds = pipeline.constant_dataset(next(iter(ds)))
  clock = _clock()
  model.fit(ds, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[clock],
            shuffle=False)
  t, c = clock.times, clock.cpu
  return steps / (t[-1] - t[warmup - 1]), (c[-1] - c[warmup - 1]) / steps


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dirs", default="",
                      help="training folders, comma-separated (default: T91 and BSD200 under "
                           "$FGRN_DATA_ROOT if it holds them, else the built-in images)")
  parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--patches", default="96,144", help="HR patch sides")
  parser.add_argument("--scales", default="2,4")
  parser.add_argument("--quick", action="store_true", help="smoke network, 32x32, 3 steps")
  parser.add_argument("--json_out", default="", help="also write the results here")
  args = parser.parse_args(argv)
  common.announce("train_throughput")
  common.configure_tf()  # TF's default threads

  from fgrn_tf import config
  from fgrn_tf.data import patches as patch_data
  from fgrn_tf.evaluate.inputs import default_data_root

  dirs = [d for d in args.data_dirs.split(",") if d]
  root = default_data_root()
  # The recorded runs used T91 + BSD200 (the shipped models' data); without them the built-in
  # photos still measure the pipeline, on other images.
  if not dirs and root is not None and (root / "T91").is_dir():
    dirs = [str(root / "T91"), str(root / "BSD200")]
  patches = [int(p) for p in args.patches.split(",")]
  if args.quick:
    patches, args.steps, args.warmup = [32], 3, 2
  image_files = patch_data.resolve_files(dirs)
  image_set = patch_data.load_images(image_files, max(patches))
  print(f"data: {', '.join(dirs) or 'built-in images'}: {image_set.summary()}")
  load_before = os.getloadavg()
  rows = []
  print(f"{'scale':>5} {'patch':>5} {'batch':>5} {'real data':>10} {'constant':>10} "
        f"{'CPU s/step':>10} {'alone<=':>8}   (steps/s)")
  for scale in [int(s) for s in args.scales.split(",")]:
    model_cfg = (config.smoke().model.replace(scale=scale) if args.quick
                 else config.model_preset_for_scale(scale))
    for patch in patches:
      real, cpu = steps_per_second(model_cfg, image_set, patch, args.batch, False, args.steps,
                                   args.warmup)
      const, _ = steps_per_second(model_cfg, image_set, patch, args.batch, True, args.steps,
                                  args.warmup)
      alone = (os.cpu_count() or 1) / cpu
      rows.append({"scale": scale, "patch": patch, "batch": args.batch, "real": real,
                   "constant": const, "cpu_seconds_per_step": cpu, "alone_at_most": alone})
      print(f"{scale:>5} {patch:>5} {args.batch:>5} {real:>10.3f} {const:>10.3f} {cpu:>10.2f} "
            f"{alone:>8.2f}", flush=True)
  load_after = os.getloadavg()
  print(f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f} on {os.cpu_count()} CPUs")
  result = {"rows": rows, "load_before": load_before, "load_after": load_after,
            "cpus": os.cpu_count(), "quick": args.quick, "data": image_set.summary()}
  print()
  print(report(result))
  if args.json_out:
    files.write_json(args.json_out, result)
  return 0


def report(result: dict) -> str:
  """Markdown: steps/s and HR megapixels/s with the real pipeline and a constant batch."""
  data = f"Data: {result['data']}. " if result.get("data") else ""
  lines = [f"{data}Load average before/after: "
           f"{result['load_before'][0]:.2f} / {result['load_after'][0]:.2f} on "
           f"{result['cpus']} CPUs. `alone <=` = cores / CPU-seconds per step, the rate the "
           "machine would reach with nothing else running.", "",
           "| scale | batch x patch | real data (steps/s) | HR Mpix/s | constant batch (steps/s) | "
           "CPU s/step | alone <= |", "|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    mpix = r["real"] * r["batch"] * r["patch"] ** 2 / 1e6
    lines.append(f"| x{r['scale']} | {r['batch']} x {r['patch']}x{r['patch']} | {r['real']:.3f} | "
                 f"{mpix:.3f} | {r['constant']:.3f} | {r['cpu_seconds_per_step']:.2f} | "
                 f"{r['alone_at_most']:.2f} |")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
