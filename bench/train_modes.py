"""Training step speed of FGRN in TF's default graph mode, with XLA, and under MirroredStrategy.

Default and XLA share one process on one device; MirroredStrategy over 2 logical CPUs needs a
process of its own (logical devices are fixed before TensorFlow initialises):

  python -m bench.train_modes --modes default,xla --scales 2,4
  python -m bench.train_modes --modes mirrored --scales 2,4
"""

from __future__ import annotations

import resource
import sys
import time

from bench import common
from fgrn_tf import errors, files

MODES = ("default", "xla", "mirrored")


def make_dataset(batch: int, patch: int, seed: int = 0):
  """An endless dataset of one fixed HR batch: the step alone, no input pipeline.

  Returns:
    `tf.data.Dataset` of HR batches `[batch, patch, patch, 3]`, float32 in [0, 1] (FGRN's
    training step computes the bicubic LR it is guided by itself).
  """
  import tensorflow as tf

  hr = tf.random.stateless_uniform([batch, patch, patch, 3], seed=[seed, 1])
  # Slices then batch (not from_tensors) so that tf.distribute can split the global batch.
  return tf.data.Dataset.from_tensor_slices(hr).repeat().batch(batch)


class _StepTimer:
  """Keras callback collecting the wall time between consecutive training batch ends."""

  def __init__(self):
    import keras

    timer = self

    class Callback(keras.callbacks.Callback):
      def on_train_batch_end(self, batch, logs=None):
        timer.ends.append(time.perf_counter())

    self.ends: list[float] = []
    self.callback = Callback()

  def step_times(self) -> list[float]:
    return [b - a for a, b in zip(self.ends, self.ends[1:], strict=False)]


def measure(scale: int, mode: str, batch: int, patch: int, steps: int, quick: bool,
            warmup: int = 2, strategy=None) -> dict:
  """Times `steps` training steps of `FGRN.fit` after `warmup` (tracing, XLA compile).

  Args:
    scale: 2 or 4 (paper-sized network, or the smoke one if `quick`).
    mode: "default" (graph mode), "xla" (`jit_compile=True`) or "mirrored" (`strategy`).
    batch, patch: global batch and HR patch side.
    steps: timed steps.
    warmup: untimed steps first.
    strategy: for "mirrored", a MirroredStrategy; one per process, shared by the calls (a
      second one in the same process reuses collective keys and fails with a shape mismatch).

  Returns:
    `{"scale", "mode", "batch", "patch", "median", "min", "max", "runs"}` in seconds per step,
    plus `"steps_per_s"` and `"hr_mpix_per_s"` from the median, and `"first_step_s"` (trace
    and compile), or `"error"` when the mode does not run.
  """
  import tensorflow as tf

  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.models.steps import Adam

  row = {"scale": scale, "mode": mode, "batch": batch, "patch": patch}
  tag = f"train x{scale} {mode} b{batch} {patch}x{patch}"
  if mode == "mirrored":
    row["devices"] = strategy.num_replicas_in_sync
  else:
    strategy = tf.distribute.get_strategy()
  try:
    with strategy.scope():
      model = FGRN(common.bench_model_config(scale, quick))
      model.compile(optimizer=Adam(1e-4), jit_compile=(mode == "xla"))
      # As the trainer does: Adam's slots made here, not in a second trace of the first step.
      model.optimizer.build(model.trainable_variables)
    data = make_dataset(batch, patch)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=warmup, epochs=1, verbose=0, shuffle=False)
    row["first_step_s"] = time.perf_counter() - start
    timer = _StepTimer()
    model.fit(data, steps_per_epoch=steps + 1, epochs=1, verbose=0, shuffle=False,
              callbacks=[timer.callback])
  except Exception as e:  # a mode that does not run is a result to report, not a crash
    row["error"] = f"{type(e).__name__}: {errors.one_line(e)[:200]}"
    common.progress(tag, f"failed: {row['error']}")
    return row
  row.update(common.summarize(timer.step_times()))
  # The process's peak so far (Linux: KiB): with one scale per process, that scale's peak.
  row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  row["steps_per_s"] = 1.0 / row["median"]
  row["hr_mpix_per_s"] = row["steps_per_s"] * batch * patch * patch / 1e6
  common.progress(tag, f"{row['steps_per_s']:.3f} steps/s ({row['median']:.3f} s/step "
                       f"[{row['min']:.3f}, {row['max']:.3f}] of {row['runs']}), "
                       f"{row['hr_mpix_per_s']:.3f} HR Mpix/s; warm-up {row['first_step_s']:.1f} s")
  return row


def main(argv=None) -> int:
  parser = common.model_bench_parser(__doc__)
  parser.add_argument("--modes", default="default,xla",
                      help=f"comma-separated, from {MODES}; 'mirrored' must run alone")
  parser.add_argument("--batch", type=int, default=4, help="global batch")
  parser.add_argument("--patch", type=int, default=96, help="HR patch side")
  parser.add_argument("--steps", type=int, default=5, help="timed steps")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
  args = parser.parse_args(argv)
  common.announce("train_modes")
  modes = args.modes.split(",")
  if set(modes) - set(MODES) or ("mirrored" in modes and len(modes) > 1):
    parser.error(f"--modes: choose from {MODES}; 'mirrored' needs a process of its own")
  tf = common.configure_tf(threads=args.threads,
                          logical_cpus=2 if "mirrored" in modes else None)
  strategy = None
  if "mirrored" in modes:
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")])
  rows = [measure(int(s), mode, args.batch, args.patch, args.steps, args.quick,
                  warmup=args.warmup, strategy=strategy)
          for s in args.scales.split(",") for mode in modes]
  if args.json_out:
    files.write_json(args.json_out, {"rows": rows})
  return 0


if __name__ == "__main__":
  sys.exit(main())
