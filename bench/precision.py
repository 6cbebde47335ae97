"""float32 against mixed_bfloat16 on this CPU: training steps/s, 512x512 round trip, quality.

Speed: the paper-sized x2 and x4 networks, the precisions alternating for `--rounds` rounds in
one process (the policy is chosen when a model is built, so no restart is needed, and
alternating shows a change of load as spread, not as a difference). Training is batch 4 of
96x96 HR patches; the round trip is one 512x512 image through the Keras backend.

Quality (`--finetune_steps N`, needs `--data_dirs` and a Set5 folder in `--eval_dir`): the
same fine-tune of the shipped model (seed, steps, data, batch) in each precision, then the
Set5 round trip of each result computed in its own precision (Y PSNR, the evaluation's
protocol), beside the shipped model's own figure.

  .venv/bin/python -m bench.precision                       # speed, x2 and x4 (~6 min)
  .venv/bin/python -m bench.precision --scales 2 --finetune_steps 200 \\
      --data_dirs DATA/T91 --eval_dir DATA/Set5              # and the quality cost (~25 min)
  .venv/bin/python -m bench.precision --quick                # tiny networks: checks the code
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import tempfile
import time

from bench import common
from fgrn_tf import files

PRECISIONS = ("float32", "mixed_bfloat16")


def round_trip_seconds(scale: int, precision: str, size: int, runs: int, quick: bool) -> list:
  import numpy as np

  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.runtime.backends import KerasBackend

  backend = KerasBackend(FGRN(common.bench_model_config(scale, quick), precision=precision))
  hr = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
  return common.time_calls(lambda: backend.upscale(backend.downscale(hr)), runs, warmup=1)


def training_steps_per_s(scale: int, precision: str, patch: int, steps: int,
                         quick: bool) -> float:
  import numpy as np

  from fgrn_tf import config
  from fgrn_tf.train import trainer

  model_cfg = common.bench_model_config(scale, quick)
  exp = config.Experiment(model_cfg, config.TrainConfig(batch_size=4, patch_size=patch,
                                                        precision=precision))
  model = trainer.build_model(exp)
  hr = np.random.default_rng(0).random((4, patch, patch, 3), dtype=np.float32)
  model.train_on_batch(hr)  # tracing
  start = time.perf_counter()
  for _ in range(steps):
    model.train_on_batch(hr)
  return steps / (time.perf_counter() - start)


def measure_speed(scales, rounds: int, quick: bool) -> dict:
  """`{(what, scale): {precision: [figure per round]}}`."""
  size, patch, steps, runs = (64, 32, 3, 2) if quick else (512, 96, 8, 3)
  figures = {}
  for r in range(rounds):
    for scale in scales:
      for precision in PRECISIONS:
        trip = statistics.median(round_trip_seconds(scale, precision, size, runs, quick))
        rate = training_steps_per_s(scale, precision, patch, steps, quick)
        figures.setdefault((f"{size}x{size} round trip (s)", scale), {}).setdefault(
            precision, []).append(trip)
        figures.setdefault(("training, batch 4 (steps/s)", scale), {}).setdefault(
            precision, []).append(rate)
        common.progress("precision", f"round {r + 1} x{scale} {precision}: round trip "
                                     f"{trip:.3f} s, training {rate:.3f} steps/s")
  return figures


def measure_quality(scale: int, steps: int, data_dirs: str, eval_dir: str, quick: bool) -> dict:
  """Set5-style Y PSNR after the same fine-tune in each precision, and of the starting model."""
  from fgrn_tf import config
  from fgrn_tf.train import trainer

  base = config.preset("smoke" if quick else f"cpu_x{scale}")
  if quick:
    base = base.replace(model={"scale": scale})
  out = {}
  with tempfile.TemporaryDirectory(prefix="precision.") as tmp:
    for precision in PRECISIONS:
      exp = base.replace(train={
          "steps": steps, "steps_per_epoch": steps, "data_dirs": tuple(data_dirs.split(",")),
          "precision": precision, "init_from": "" if quick else "shipped", "seed": 0})
      workdir = pathlib.Path(tmp) / precision
      start = time.perf_counter()
      trainer.train(exp, workdir, stream=open("/dev/null", "w"))
      seconds = time.perf_counter() - start
      out[precision] = {"psnr": common.round_trip_psnr(
          workdir, scale, eval_dir, pathlib.Path(tmp) / f"eval_{precision}", precision),
                        "finetune_s": seconds}
      common.progress("precision", f"fine-tune {precision}: {steps} steps in {seconds:.0f} s, "
                                   f"round trip {out[precision]['psnr']:.3f} dB")
    if not quick:
      out["shipped (float32)"] = {"psnr": common.round_trip_psnr(
          None, scale, eval_dir, pathlib.Path(tmp) / "eval_shipped")}
  return out


def report(info: dict, speed: dict, quality: dict | None, steps: int) -> str:
  lines = [common.machine_line(info, info.get("peak_gflops")), "",
           "| what | float32 (rounds) | mixed_bfloat16 (rounds) | bf16 speed-up |",
           "|---|---|---|---|"]
  for (what, scale), by in sorted(speed.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    f32, bf16 = by["float32"], by["mixed_bfloat16"]
    up = (statistics.median(f32) / statistics.median(bf16) if "(s)" in what else
          statistics.median(bf16) / statistics.median(f32))
    lines.append(f"| x{scale} {what} | {' / '.join(f'{v:.3f}' for v in f32)} | "
                 f"{' / '.join(f'{v:.3f}' for v in bf16)} | {up:.2f}x |")
  if quality:
    lines += ["", f"Same fine-tune ({steps} steps) in each precision, round trip Y PSNR:", "",
              "| model | PSNR (dB) | fine-tune (s) |", "|---|---|---|"]
    for name, row in quality.items():
      seconds = f"{row['finetune_s']:.0f}" if "finetune_s" in row else ""
      lines.append(f"| {name} | {row['psnr']:.3f} | {seconds} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = common.model_bench_parser(__doc__)
  parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
  parser.add_argument("--finetune_steps", type=int, default=0,
                      help="also fine-tune in each precision for this many steps (0: no)")
  parser.add_argument("--data_dirs", default="", help="training images for the fine-tune")
  parser.add_argument("--eval_dir", default="", help="image folder the fine-tunes are scored on")
  args = parser.parse_args(argv)
  if args.finetune_steps and not (args.data_dirs and args.eval_dir):
    parser.error("--finetune_steps needs --data_dirs and --eval_dir")
  info = common.announce("precision") or common.machine_info()
  common.configure_tf(threads=args.threads)
  scales = [int(s) for s in args.scales.split(",")]
  speed = measure_speed(scales, args.rounds, args.quick)
  quality = (measure_quality(scales[0], args.finetune_steps, args.data_dirs, args.eval_dir,
                             args.quick) if args.finetune_steps else None)
  text = report(info, speed, quality, args.finetune_steps)
  print(text)
  if args.json_out:
    files.write_json(args.json_out, {"machine": info, "markdown": text, "quality": quality,
                                     "speed": {f"{w} x{s}": v for (w, s), v in speed.items()}})
  return 0


if __name__ == "__main__":
  sys.exit(main())
