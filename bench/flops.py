"""FGRN's FLOPs per image (Gd, F, Gu), the machine's float32 peak, and the fraction achieved.

Every convolution of FGRN runs at the LR resolution (Gd after its space-to-depth squeeze, F on
the LR image, Gu before its depth-to-space), so a module's FLOPs per image are
2 x (its conv kernel weights) x (LR pixels). TF's own counter (`tf.compat.v1.profiler` on a
traced graph with static shapes) checks that count. The peak is a large float32 matmul.

  python -m bench.flops --scales 2,4
"""

from __future__ import annotations

import sys

from bench import common

MODULES = ("Gd", "F", "Gu")
OPS = ("downscale", "upscale", "roundtrip", "train_step")  # the keys of `op_flops`


def _modules(model) -> dict:
  return {"Gd": model.downscaler, "F": model.flow, "Gu": model.upscaler}


def module_flops(model, hr_side: int) -> dict:
  """Forward FLOPs (2 per multiply-add, convolutions only) of Gd, F and Gu for one image.

  Args:
    model: an `FGRN`.
    hr_side: HR image side (square image, a multiple of the scale).

  Returns:
    `{"Gd": float, "F": float, "Gu": float}`. F counts one pass (forward and inverse cost the
    same); biases and element-wise ops (< 0.1%) are left out.
  """
  lr_pixels = (hr_side // model.scale) ** 2
  flops = {}
  for name, module in _modules(model).items():
    weights = [] if module is None else module.trainable_weights
    kernels = sum(int(w.numpy().size) for w in weights if len(w.shape) == 4)
    flops[name] = 2.0 * kernels * lr_pixels
  return flops


def op_flops(model, hr_side: int, batch: int = 4, patch: int = 96) -> dict:
  """FLOPs of what users run: per image for the rescaling ops, per step for training.

  The training step is the forward pass of Gd, Gu and F plus a backward pass that costs two
  forward passes (gradients with respect to inputs and to weights), minus the input gradient
  of Gd's first conv, which nothing needs.
  """
  m = module_flops(model, hr_side)
  per_patch = module_flops(model, patch)
  head = model.downscaler.head.kernel
  head_flops = 2.0 * int(head.numpy().size) * (patch // model.scale) ** 2
  train = batch * (3 * sum(per_patch.values()) - head_flops)
  return {"downscale": m["Gd"] + m["F"], "upscale": m["F"] + m["Gu"],
          "roundtrip": m["Gd"] + 2 * m["F"] + m["Gu"], "train_step": train}


def profiler_flops(fn, *specs) -> int:
  """Float ops TF's profiler counts in the graph of `fn` traced for static-shape `specs`."""
  import tensorflow as tf

  graph = tf.function(fn).get_concrete_function(*specs).graph
  opts = (tf.compat.v1.profiler.ProfileOptionBuilder(
      tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build())
  logger, level = tf.get_logger(), tf.get_logger().level
  logger.setLevel("ERROR")  # the v1 profiler warns that its shape helper is deprecated
  try:
    return int(tf.compat.v1.profiler.profile(graph, options=opts).total_float_ops)
  finally:
    logger.setLevel(level)


def profiled_op_flops(model, hr_side: int, batch: int = 4, patch: int = 96) -> dict:
  """`op_flops` as counted by TF's profiler: convs, element-wise ops, and in the training step
  also the Adam update and the bicubic LR that guides F (computed inside the step)."""
  import tensorflow as tf

  from fgrn_tf.models.steps import Adam

  s = model.scale
  hr = tf.TensorSpec([1, hr_side, hr_side, 3], tf.float32)
  lr = tf.TensorSpec([1, hr_side // s, hr_side // s, 3], tf.float32)
  if getattr(model, "optimizer", None) is None:
    model.compile(optimizer=Adam(1e-4))
  model.optimizer.build(model.trainable_variables)
  patches = tf.TensorSpec([batch, patch, patch, 3], tf.float32)
  return {"downscale": profiler_flops(model.downscale_float, hr),
          "upscale": profiler_flops(model.upscale_float, lr),
          "train_step": profiler_flops(model.train_step, patches)}


def peak_flops(n: int = 4096, runs: int = 3) -> dict:
  """float32 FLOP/s of an n x n matmul in TF (this process's threads): the machine's limit.

  Returns:
    `{"n", "gflops" (median), "gflops_max", "runs"}`.
  """
  import tensorflow as tf

  a = tf.random.stateless_uniform([n, n], seed=[1, 2])
  b = tf.random.stateless_uniform([n, n], seed=[3, 4])
  matmul = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)[:1, :1]))
  times = common.time_calls(lambda: matmul().numpy(), runs, warmup=1)
  s = common.summarize(times)
  return {"n": n, "gflops": 2 * n**3 / s["median"] / 1e9, "gflops_max": 2 * n**3 / s["min"] / 1e9,
          "runs": runs}


def measure(scales, quick: bool, upscale_s: dict | None = None,
            step_s: dict | None = None, batch: int = 4, patch: int = 96,
            hr_side: int = 512) -> dict:
  """Counts, peak and achieved fractions for each scale.

  Args:
    scales: scales to count.
    quick: tiny networks, a small matmul, small images.
    upscale_s: `{scale: seconds}` of one `hr_side` upscale, as measured elsewhere; scales
      missing here are timed now (3 runs after a warm-up).
    step_s: `{scale: seconds}` of one training step at `batch` x `patch`; timed now if missing.

  Returns:
    `{"peak": peak_flops(...), "rows": [...]}`, a row per scale with the per-module and per-op
    FLOPs (analytic and profiled) and `"upscale_fraction"`, `"train_fraction"` of the peak.
  """
  from bench import keras_latency, train_modes
  from fgrn_tf.models.fgrn import FGRN

  upscale_s, step_s = dict(upscale_s or {}), dict(step_s or {})
  peak = peak_flops(1024 if quick else 4096)
  common.progress("flops", f"peak: {peak['gflops']:.1f} GFLOP/s float32 "
                           f"(median of {peak['runs']} {peak['n']}x{peak['n']} matmuls)")
  rows = []
  for scale in scales:
    model = FGRN(common.bench_model_config(scale, quick))
    row = {"scale": scale, "hr_side": hr_side, "batch": batch, "patch": patch,
           "params": int(model.count_params()),
           "module_gflops": {k: v / 1e9 for k, v in module_flops(model, hr_side).items()},
           "op_gflops": {k: v / 1e9 for k, v in op_flops(model, hr_side, batch, patch).items()},
           "profiler_gflops": {k: v / 1e9 for k, v in
                               profiled_op_flops(model, hr_side, batch, patch).items()}}
    if scale not in upscale_s:
      lat = keras_latency.measure(scale, [hr_side], threads=0, quick=quick, runs=3)
      upscale_s[scale] = next(r["median"] for r in lat if r["op"] == "upscale")
    if scale not in step_s:
      step_s[scale] = train_modes.measure(scale, "default", batch, patch, 3, quick)["median"]
    row["upscale_s"], row["step_s"] = upscale_s[scale], step_s[scale]
    row["upscale_gflops_per_s"] = row["op_gflops"]["upscale"] / row["upscale_s"]
    row["train_gflops_per_s"] = row["op_gflops"]["train_step"] / row["step_s"]
    row["upscale_fraction"] = row["upscale_gflops_per_s"] / peak["gflops"]
    row["train_fraction"] = row["train_gflops_per_s"] / peak["gflops"]
    rows.append(row)
    m, o, p = row["module_gflops"], row["op_gflops"], row["profiler_gflops"]
    common.progress(f"flops x{scale}", (
        f"per {hr_side}x{hr_side} image: Gd {m['Gd']:.1f}, F {m['F']:.1f}, Gu {m['Gu']:.1f} "
        f"GFLOP; upscale {o['upscale']:.1f} (profiler {p['upscale']:.1f}), training step "
        f"b{batch} {patch}x{patch} {o['train_step']:.1f} (profiler {p['train_step']:.1f})"))
    common.progress(f"flops x{scale}", (
        f"upscale {row['upscale_gflops_per_s']:.1f} GFLOP/s = "
        f"{100 * row['upscale_fraction']:.0f}% of peak; training "
        f"{row['train_gflops_per_s']:.1f} GFLOP/s = {100 * row['train_fraction']:.0f}%"))
  return {"peak": peak, "rows": rows}


def main(argv=None) -> int:
  parser = common.model_bench_parser(__doc__)
  parser.add_argument("--peak_only", action="store_true",
                      help="print the float32 matmul peak as `peak_gflops N` and stop")
  args = parser.parse_args(argv)
  common.configure_tf(threads=args.threads)
  quick = args.quick
  if args.peak_only:
    peak = peak_flops(1024 if quick else 4096)
    print(common.machine_line(common.machine_info(), peak["gflops"]))
    print(f"peak_gflops {peak['gflops']:.2f}")
    return 0
  result = measure([int(s) for s in args.scales.split(",")], quick,
                   batch=2 if quick else 4, patch=32 if quick else 96,
                   hr_side=128 if quick else 512)
  if args.json_out:
    common.write_json(args.json_out, result)
  return 0


if __name__ == "__main__":
  sys.exit(main())
