"""Where the time goes in one FGRN training step and one upscale: the ops that dominate.

Runs the step under TF's profiler (`tf.profiler.experimental`), reads the trace it writes
(XSpace protobuf) and sums the time of each executed op by op type and by module (Gd, F, Gu).
Op times are summed over threads, so with 2 threads they can exceed the wall time.

  python -m bench.profile_step --scales 2,4
  python -m bench.profile_step --scales 2 --precision mixed_bfloat16   # where bf16 time goes
"""

from __future__ import annotations

import collections
import pathlib
import re
import sys
import tempfile
import time

from bench import common
from fgrn_tf import files

# Executor op events in the host plane are named "<op name>:<op type>".
_OP_EVENT = re.compile(r"^(?P<name>[^:\s]+):(?P<type>[A-Za-z_][\w]*)$")
# Calls that contain other ops: counting them would count their ops twice.
_CONTAINERS = {"PartitionedCall", "StatefulPartitionedCall", "While", "If", "StatelessIf"}
# Name scopes of the modules. F's cells are called through `forward`/`inverse`, not
# `__call__`, so its ops carry only the dense blocks' scopes a, b, p.
_SCOPES = {"Gd": "Gd", "Gu": "Gu", "F": "F", "a": "F", "b": "F", "p": "F"}


def module_of(op_name: str) -> str:
  """Gd, F, Gu, optimizer or other, from an op's scoped name."""
  parts = [re.sub(r"_\d+$", "", p) for p in op_name.split("/")]
  for part in parts:  # the first module scope below the model's own ("fgrn", "gradient_tape")
    if part in _SCOPES:
      return _SCOPES[part]
  if re.match(r"(adam|Adam|optimizer|SGD)", parts[0]):
    return "optimizer"
  return "other"


def trace_ops(fn, runs: int = 1) -> tuple[list[tuple[str, str, float]], float]:
  """Runs `fn` `runs` times under the profiler.

  Returns:
    (`[(op name, op type, seconds)]` per executed op, wall seconds per run).
  """
  import tensorflow as tf
  from tensorflow.tsl.profiler.protobuf import xplane_pb2

  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(runs):
      fn()
    wall = (time.perf_counter() - start) / runs
    tf.profiler.experimental.stop()
    files = sorted(pathlib.Path(logdir).rglob("*.xplane.pb"))
    if not files:
      raise RuntimeError(f"the profiler wrote no trace under {logdir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
  ops = []
  for plane in space.planes:
    meta = plane.event_metadata
    for line in plane.lines:
      for event in line.events:
        match = _OP_EVENT.match(meta[event.metadata_id].name)
        if match and match["type"] not in _CONTAINERS:
          ops.append((match["name"], match["type"], event.duration_ps * 1e-12 / runs))
  return ops, wall


def summarize_ops(ops, wall: float, top: int = 12) -> dict:
  """Op time by type (the `top` largest) and by module, in seconds and as a share of op time."""
  total = sum(t for _, _, t in ops) or 1e-12
  by_type, by_module = collections.Counter(), collections.Counter()
  for name, op_type, t in ops:
    by_type[op_type] += t
    by_module[module_of(name)] += t
  return {"wall_s": wall, "op_s": total,
          "by_type": [{"op": k, "s": v, "share": v / total} for k, v in by_type.most_common(top)],
          "by_module": [{"module": k, "s": v, "share": v / total}
                        for k, v in by_module.most_common()]}


def profile(scale: int, quick: bool, hr_side: int = 512, batch: int = 4,
            patch: int = 96, precision: str = "float32") -> dict:
  """Profiles one upscale of an `hr_side` image and one training step at `batch` x `patch`.

  Returns:
    `{"scale", "upscale": summarize_ops(...), "train_step": summarize_ops(...)}`.
  """
  import numpy as np
  import tensorflow as tf

  from bench.train_modes import make_dataset
  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.models.steps import Adam
  from fgrn_tf.runtime.backends import KerasBackend

  model = FGRN(common.bench_model_config(scale, quick), precision=precision)
  backend = KerasBackend(model)
  lr = np.random.default_rng(0).integers(0, 256, (1, hr_side // scale, hr_side // scale, 3),
                                         dtype=np.uint8)
  backend.upscale(lr)  # trace and warm up outside the profile
  result = {"scale": scale, "hr_side": hr_side, "batch": batch, "patch": patch,
            "precision": precision}
  result["upscale"] = summarize_ops(*trace_ops(lambda: backend.upscale(lr)))

  model.compile(optimizer=Adam(1e-4))
  model.optimizer.build(model.trainable_variables)  # as the trainer does: one trace, not two
  data = next(iter(make_dataset(batch, patch)))
  step = tf.function(model.train_step)
  step(data)
  result["train_step"] = summarize_ops(*trace_ops(lambda: step(data)))
  for what in ("upscale", "train_step"):
    r = result[what]
    types = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in r["by_type"][:5])
    modules = ", ".join(f"{o['module']} {100 * o['share']:.0f}%" for o in r["by_module"])
    common.progress(f"profile x{scale} {what}", f"wall {r['wall_s']:.2f} s; {types}; {modules}")
  return result


def main(argv=None) -> int:
  parser = common.model_bench_parser(__doc__)
  parser.add_argument("--precision", default="float32", help="Gd's and Gu's dtype policy")
  args = parser.parse_args(argv)
  common.announce("profile_step")
  common.configure_tf(threads=args.threads)
  kwargs = dict(hr_side=128, batch=2, patch=32) if args.quick else {}
  results = [profile(int(s), args.quick, precision=args.precision, **kwargs)
             for s in args.scales.split(",")]
  if args.json_out:
    files.write_json(args.json_out, {"rows": results})
  return 0


if __name__ == "__main__":
  sys.exit(main())
