"""One training run on a lent accelerator, from shipped weights, for a fixed number of minutes.

Made for a machine like the one this project is lent (one NVIDIA H200, Python 3.12 with JAX
and CUDA, no TensorFlow, no network): Keras runs on JAX, the images come from a carried folder
(`bench/make_carry.sh`), and everything worth keeping goes to --out, each file under 16 MiB:
the best and last weights stored as float16 (load with `fgrn-eval --model DIR` after copying
them into a folder with config.json), config.json, train_state.json, history.jsonl (loss and
validation PSNR per epoch) and campaign.json: versions, device, steps/s, images/s, peak device
memory and the share of the device's bf16 peak the step reached. `bench/gpu_campaign.sh` is the
one command; `--allow_cpu` runs the same thing on a CPU with tiny sizes (the tests do).

  python -m bench.gpu_campaign --preset x2 --init_from MODEL --minutes 6 --data_dirs DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

# bf16 dense peak of the devices this is run on (vendor figures, no sparsity), in FLOP/s.
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def _fail(text: str) -> int:
  print(f"gpu_campaign: error: {text}", file=sys.stderr)
  return 2


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--preset", default="x2")
  p.add_argument("--init_from", default="shipped", help="weights to start from (a model folder)")
  p.add_argument("--minutes", type=float, required=True, help="training time, compile included")
  p.add_argument("--data_dirs", required=True, help="comma-separated training image folders")
  p.add_argument("--val_dir", default="", help="validation images (default: 5 held out)")
  p.add_argument("--out", required=True, help="folder for the results (created)")
  p.add_argument("--workdir", default="", help="the run's folder (default: OUT/../campaign_run)")
  p.add_argument("--batch", type=int, default=36)
  p.add_argument("--patch", type=int, default=192)
  p.add_argument("--steps_per_epoch", type=int, default=250)
  p.add_argument("--precision", default="mixed_bfloat16")
  p.add_argument("--allow_cpu", action="store_true", help="run on a CPU (a test of the script)")
  return p.parse_args(argv)


def device_info() -> dict:
  import jax

  device = jax.devices()[0]
  info = {"platform": device.platform, "device": getattr(device, "device_kind", str(device)),
          "devices": jax.device_count()}
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats:
    info["peak_memory_gib"] = round(stats.get("peak_bytes_in_use", 0) / 2**30, 2)
  return info


def main(argv=None) -> int:
  args = parse(argv)
  try:
    import jax
  except ImportError:
    return _fail("JAX is not installed (the campaign trains on Keras' JAX backend)")
  if jax.devices()[0].platform not in ("gpu", "cuda", "rocm", "tpu") and not args.allow_cpu:
    return _fail(f"no GPU: JAX sees {jax.devices()[0].platform} only (--allow_cpu to run anyway)")
  import keras

  from bench.flops import op_flops
  from fgrn_tf import config
  from fgrn_tf import workdir as wd
  from fgrn_tf.errors import FGRNError, one_line
  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.train import trainer

  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  run = pathlib.Path(args.workdir or out.parent / "campaign_run")
  exp = config.preset(args.preset)
  steps = args.steps_per_epoch * 10_000  # the clock, not the step count, ends this run
  exp = exp.replace(train={
      "batch_size": args.batch, "patch_size": args.patch, "precision": args.precision,
      "init_from": args.init_from, "data_dirs": tuple(d for d in args.data_dirs.split(",") if d),
      "val_dir": args.val_dir, "steps": steps, "steps_per_epoch": args.steps_per_epoch,
      "lr_halving_steps": max(exp.train.lr_halving_steps, steps)})
  started = time.time()
  try:
    summary = trainer.train(exp, run, time_limit_s=args.minutes * 60)
  except FGRNError as e:
    return _fail(one_line(e))
  seconds = time.time() - started
  state = wd.read_state(run)
  history = [json.loads(line) for line in (run / wd.HISTORY).read_text().splitlines()]
  done = summary.steps - (history[0]["step"] - args.steps_per_epoch if history else 0)
  # Steady rate: the epochs after the first (which compiled the step).
  if len(history) > 1:
    steady = (history[-1]["step"] - history[0]["step"]) / max(
        history[-1]["seconds"] - history[0]["seconds"], 1e-9)
  else:
    steady = done / max(seconds, 1e-9)
  info = device_info()
  flops = op_flops(FGRN(exp.model), args.patch, args.batch, args.patch)["train_step"]
  peak = next((v for k, v in BF16_PEAK.items() if k in info["device"]), None)
  log = {
      "versions": {"python": platform.python_version(), "jax": jax.__version__,
                   "keras": keras.__version__, "backend": keras.backend.backend()},
      **info, "preset": args.preset, "init_from": args.init_from, "batch": args.batch,
      "patch": args.patch, "precision": args.precision, "wall_seconds": round(seconds, 1),
      "steps": done, "steps_per_s": round(steady, 3), "images_per_s": round(steady * args.batch, 1),
      "train_step_gflop": round(flops / 1e9, 1),
      "share_of_bf16_peak": round(steady * flops / peak, 4) if peak else None,
      "best_val_psnr": state.get("best_val_psnr"), "last_val_psnr": state.get("last_val_psnr"),
  }
  (out / "campaign.json").write_text(json.dumps(log, indent=2))
  for name in (wd.CONFIG, wd.STATE, wd.HISTORY):
    shutil.copyfile(run / name, out / name)
  for name in (wd.BEST_WEIGHTS, wd.LAST_WEIGHTS):
    if (run / name).is_file():
      wd.half_precision_weights(run / name, out / name)
  print(json.dumps(log))
  return 0


if __name__ == "__main__":
  sys.exit(main())
