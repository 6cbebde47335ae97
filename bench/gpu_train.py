"""Training throughput on the GPUs TensorFlow sees: the paper's x2 network and batch (36 of
192x192 HR patches) under MirroredStrategy, in each precision asked for.

Run by `bench/gpu_check.sh` in a venv with `tensorflow[and-cuda]`. Per precision it traces and
warms up for `--warmup` steps, then times `--steps` steps and prints steps/s, images/s, the
peak memory of each GPU and the loss at the end. The data are random crops of the built-in
photos, cached in memory, so the input pipeline is not what is measured.

  python -m bench.gpu_train                                 # 200 steps, float32 and mixed_float16
  python -m bench.gpu_train --allow_cpu --batch 4 --patch 32 --steps 2 --quick   # checks the code
"""

from __future__ import annotations

import sys
import time

from bench import common


def _fail(message: str) -> int:
  print(f"gpu_train: error: {message}", file=sys.stderr)
  return 1


def run(precision: str, args, devices) -> dict:
  import tensorflow as tf

  from fgrn_tf import config
  from fgrn_tf.data import patches as patch_data
  from fgrn_tf.data import pipeline
  from fgrn_tf.train import trainer

  strategy = tf.distribute.MirroredStrategy(devices)
  model_cfg = common.bench_model_config(2, args.quick)
  exp = config.Experiment(model_cfg, config.TrainConfig(
      batch_size=args.batch, patch_size=args.patch, precision=precision))
  model = trainer.build_model(exp, strategy)
  image_set = patch_data.load_images(patch_data.resolve_files(()), args.patch)
  data = pipeline.training_dataset(image_set, 2, args.batch, args.patch)
  model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0, shuffle=False)  # tracing
  gpus = [d for d in devices if "GPU" in d]
  for gpu in gpus:
    tf.config.experimental.reset_memory_stats(gpu)
  start = time.perf_counter()
  history = model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
  seconds = time.perf_counter() - start
  peaks = [tf.config.experimental.get_memory_info(gpu)["peak"] / 2**30 for gpu in gpus]
  return {"precision": precision, "replicas": strategy.num_replicas_in_sync,
          "steps_per_s": args.steps / seconds, "images_per_s": args.steps * args.batch / seconds,
          "peak_gib": peaks, "loss": float(history.history["loss"][-1])}


def main(argv=None) -> int:
  parser = common.script_parser(__doc__)
  parser.add_argument("--steps", type=int, default=200, help="timed steps per precision")
  parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
  parser.add_argument("--batch", type=int, default=36, help="global batch")
  parser.add_argument("--patch", type=int, default=192, help="HR patch side")
  parser.add_argument("--precisions", default="float32,mixed_float16")
  parser.add_argument("--quick", action="store_true", help="the tiny network")
  parser.add_argument("--allow_cpu", action="store_true",
                      help="run on the CPU when there is no GPU (to check this script)")
  args = parser.parse_args(argv)
  tf = common.configure_tf()
  gpus = tf.config.list_logical_devices("GPU")
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    print(f"GPU {gpu.name}: {details.get('device_name', '?')}, compute capability "
          f"{details.get('compute_capability', '?')}", flush=True)
  if not gpus and not args.allow_cpu:
    return _fail(f"TensorFlow {tf.__version__} sees no GPU (built with CUDA: "
                 f"{tf.test.is_built_with_cuda()}); is this the tensorflow[and-cuda] venv?")
  devices = [g.name for g in gpus] or ["/cpu:0"]
  print(f"TensorFlow {tf.__version__}; MirroredStrategy over {', '.join(devices)}; x2, batch "
        f"{args.batch} of {args.patch}x{args.patch}, {args.steps} timed steps", flush=True)
  print("| precision | replicas | steps/s | images/s | peak memory per GPU (GiB) | loss at end |")
  print("|---|---|---|---|---|---|")
  for precision in args.precisions.split(","):
    row = run(precision, args, devices)
    peaks = ", ".join(f"{p:.2f}" for p in row["peak_gib"]) or "n/a (CPU)"
    print(f"| {precision} | {row['replicas']} | {row['steps_per_s']:.2f} | "
          f"{row['images_per_s']:.1f} | {peaks} | {row['loss']:.4f} |", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
