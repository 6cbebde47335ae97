"""TensorFlow before and after the backend-agnostic model core, and JAX beside it, in one run.

  python -m bench.backend_speed --old_tree DIR [--rounds 15] [--steps 4] [--json_out F]

`--old_tree` is a checkout of the version to compare with (e.g. `git archive 3f0775e | tar -x
-C DIR`, the last commit before the model core moved to keras.ops). Three worker processes
stay up for the whole run, each with the paper's x2 network built and warmed up (tracing or
compiling excluded): the old tree on TensorFlow, this tree on TensorFlow, this tree on JAX.
Each round asks each worker in turn for `--steps` training steps (the `quick` preset's recipe:
batch 4 of 64x64 HR patches) and three upscales of a 128x128 LR (TensorFlow: the tools' traced
uint8 upscale), so the runs compared sit seconds apart: on a shared machine whose speed drifts
by tens of percent between minutes, ratios within a round are what can be compared. Prints
medians over the rounds, the medians of the rounds' new/old ratios (aim: TensorFlow within 3%)
and JAX/TensorFlow ones, with the machine line.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pathlib
import statistics
import subprocess
import sys

from bench import common

WARMUP = 3


def _serve() -> None:
  """A worker: builds and warms up the model, then answers one line per request on stdin
  ("STEPS") with the seconds a step and an upscale took, as JSON."""
  import json
  import statistics
  import sys
  import time

  import keras
  import numpy as np

  import fgrn_tf
  from fgrn_tf import config
  from fgrn_tf.train import trainer

  experiment = config.quick()
  model = trainer.build_model(experiment)
  rng = np.random.default_rng(0)
  t = experiment.train
  hr = rng.uniform(0, 1, (t.batch_size, t.patch_size, t.patch_size, 3)).astype("float32")
  lr = rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
  if keras.backend.backend() == "tensorflow":
    from fgrn_tf.runtime.backends import KerasBackend

    upscale = KerasBackend(model).upscale
  else:
    import jax

    upscale = jax.jit(model.upscale)
  for _ in range(WARMUP):
    model.train_on_batch(hr)
    np.asarray(upscale(lr))
  print(json.dumps({"tree": str(pathlib.Path(fgrn_tf.__file__).parents[1])}), flush=True)
  for line in sys.stdin:
    steps = int(line)
    started = time.perf_counter()
    for _ in range(steps):
      logs = model.train_on_batch(hr, return_dict=True)
    float(logs["loss"])  # the last step has finished
    step_s = (time.perf_counter() - started) / steps
    times = []
    for _ in range(3):
      started = time.perf_counter()
      np.asarray(upscale(lr))
      times.append(time.perf_counter() - started)
    print(json.dumps({"step_s": step_s, "upscale_s": statistics.median(times)}), flush=True)


class Worker:
  """One `_serve` process on `backend`, importing fgrn_tf from `tree`."""

  def __init__(self, tree: pathlib.Path, backend: str):
    # `python -c` from inside `tree`: fgrn_tf is imported from there (whatever is installed),
    # and the old tree needs no copy of this script.
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(tree)}
    code = f"import pathlib\nWARMUP = {WARMUP}\n{inspect.getsource(_serve)}\n_serve()"
    self.name = f"{backend} in {tree}"
    self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=tree, env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
    ready = self._answer()
    if pathlib.Path(ready["tree"]).resolve() != tree.resolve():
      raise SystemExit(f"{self.name}: imported fgrn_tf from {ready['tree']}")

  def _answer(self) -> dict:
    line = self.proc.stdout.readline()
    if not line:
      raise SystemExit(f"{self.name}: the worker stopped (exit code {self.proc.wait()})")
    return json.loads(line)

  def measure(self, steps: int) -> dict:
    self.proc.stdin.write(f"{steps}\n")
    self.proc.stdin.flush()
    return self._answer()

  def close(self) -> None:
    self.proc.stdin.close()
    self.proc.wait(timeout=60)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--old_tree", help="a checkout of the version to compare with")
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--json_out", default="")
  args = parser.parse_args()
  old = pathlib.Path(args.old_tree or "")
  if not args.old_tree or not (old / "fgrn_tf").is_dir():
    parser.error(f"--old_tree {args.old_tree}: not a checkout of fgrn-tf (no fgrn_tf/ folder)")
  labels = {"tf_old": f"TensorFlow, {old.name} (before)", "tf_new": "TensorFlow, this tree",
            "jax_new": "JAX, this tree"}
  workers = {"tf_old": Worker(old, "tensorflow"), "tf_new": Worker(common.ROOT, "tensorflow"),
             "jax_new": Worker(common.ROOT, "jax")}
  runs = {name: [] for name in workers}
  try:
    for r in range(args.rounds):
      for name, worker in workers.items():
        runs[name].append(worker.measure(args.steps))
      print(f"round {r + 1}: " + ", ".join(
          f"{name} {1 / runs[name][-1]['step_s']:.2f} steps/s "
          f"{runs[name][-1]['upscale_s'] * 1e3:.0f} ms" for name in workers),
          file=sys.stderr, flush=True)
  finally:
    for worker in workers.values():
      worker.close()

  def paired(name, other, key):
    return statistics.median(a[key] / b[key] for a, b in zip(runs[name], runs[other],
                                                               strict=True))

  med = {name: {k: statistics.median(x[k] for x in rs) for k in ("step_s", "upscale_s")}
         for name, rs in runs.items()}
  ratios = {"tf_steps_per_s_new_over_old": paired("tf_old", "tf_new", "step_s"),
            "tf_upscale_time_new_over_old": paired("tf_new", "tf_old", "upscale_s"),
            "jax_over_tf_steps_per_s": paired("tf_new", "jax_new", "step_s"),
            "jax_over_tf_upscale_time": paired("jax_new", "tf_new", "upscale_s")}
  info = common.machine_info()
  print(common.machine_line(info))
  print(f"\nThe paper's x2 network, quick recipe (batch 4 of 64x64), {args.steps} steps a round; "
        f"upscale of a 128x128 LR; medians of {args.rounds} rounds\n")
  print("| run | training steps/s | upscale 128x128 (ms) |")
  print("|---|---|---|")
  for name, m in med.items():
    print(f"| {labels[name]} | {1 / m['step_s']:.3f} | {m['upscale_s'] * 1e3:.1f} |")
  print(f"\nMedians of the rounds' ratios. TensorFlow now/before: steps/s "
        f"x{ratios['tf_steps_per_s_new_over_old']:.3f}, upscale time "
        f"x{ratios['tf_upscale_time_new_over_old']:.3f} (aim: within 3%); JAX/TensorFlow: "
        f"steps/s x{ratios['jax_over_tf_steps_per_s']:.3f}, upscale time "
        f"x{ratios['jax_over_tf_upscale_time']:.3f}")
  if args.json_out:
    pathlib.Path(args.json_out).write_text(json.dumps(
        {"machine": info, "runs": runs, "medians": med, "ratios": ratios}, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
