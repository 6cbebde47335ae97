"""Helpers shared by the benchmark scripts: the machine, TF threading, timing, worker processes."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from fgrn_tf import tf_env  # noqa: E402

# Official IRN (PyTorch 2.13 CPU, 2 threads) on a 2-core CPU like this one (docs/TF-NOTES.md).
# Training: steps/s at batch 4 for (scale, HR patch); round trip: seconds for a 512x512 HR image.
IRN_TRAIN_STEPS_PER_S = {(2, 96): 0.53, (2, 144): 0.23, (4, 96): 0.35, (4, 144): 0.18}
IRN_ROUNDTRIP_512_S = {2: 6.5, 4: 7.9}
# What FGRN-TF aims for against those figures.
AIM_TRAIN_SPEEDUP = 2.0
AIM_ROUNDTRIP_SPEEDUP = 3.0


def machine_info() -> dict:
  """CPU model, core counts, library versions, date and load: the header of every report."""
  cpu = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  info = {
      "cpu": cpu,
      "logical_cores": os.cpu_count(),
      "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "python": platform.python_version(),
      "platform": platform.platform(),
      "date": utc_now(),
      "loadavg": load_average(),
  }
  try:  # versions without importing TF (seconds, and it would fix the threading of this process)
    from importlib import metadata
    for dist, key in (("tensorflow-cpu", "tensorflow"), ("tensorflow", "tensorflow"),
                      ("keras", "keras"), ("numpy", "numpy")):
      try:
        info.setdefault(key, metadata.version(dist))
      except metadata.PackageNotFoundError:
        pass
  except ImportError:
    pass
  return info


def utc_now() -> str:
  return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def load_average() -> list[float] | None:
  """1, 5 and 15 minute load averages (other processes inflate every figure measured here)."""
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return None


def configure_tf(threads: int | None = None, logical_cpus: int | None = None):
  """Imports TensorFlow with a thread count and logical CPU split; call before any TF work.

  Args:
    threads: intra- and inter-op threads (None: TF's default, one per core).
    logical_cpus: split the CPU into this many logical devices (for MirroredStrategy).

  Returns:
    The `tensorflow` module.
  """
  tf_env.set_defaults()
  import tensorflow as tf

  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  if logical_cpus and logical_cpus > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
  return tf


def bench_model_config(scale: int, quick: bool):
  """The paper-sized network for `scale`, or (quick) the smoke preset's tiny one at that scale.

  Untrained weights: the speed of a network does not depend on its training. The quick one
  has a single flow cell: tracing a training step costs tens of seconds per cell on a busy
  2-core machine, and the quick run only checks that the benchmark code works.
  """
  from fgrn_tf import config

  if quick:
    return config.smoke().model.replace(scale=scale, flow_cells=1)
  return config.model_preset_for_scale(scale)


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
  """Wall-clock seconds of `runs` calls of `fn` after `warmup` untimed ones."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def summarize(times: Sequence[float]) -> dict:
  """Median and spread (min, max) of repeated timings, in the unit given."""
  return {"median": statistics.median(times), "min": min(times), "max": max(times),
          "runs": len(times)}


def write_json(path, obj) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=1, default=float))
  tmp.replace(path)


def progress(tag: str, message: str) -> None:
  """One progress line, flushed at once (the runner streams worker output live)."""
  print(f"[{time.strftime('%H:%M:%S')}] {tag}: {message}", flush=True)


def run_script(script: pathlib.Path, args: Sequence[str], timeout: float,
               log_path: pathlib.Path | None = None, tag: str = "",
               env: dict | None = None) -> tuple[int | None, str]:
  """Runs `python script args` in a fresh process, echoing its output live.

  A fresh process per setting is what makes thread counts and logical devices take effect
  (TensorFlow fixes them when it initialises). `env` adds environment variables.

  Returns:
    (exit code, or None on timeout; the captured output).
  """
  env = {**tf_env.DEFAULTS, **os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
  cmd = [sys.executable, str(script), *args]
  lines = []
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
  deadline = time.monotonic() + timeout
  code = None
  try:
    import selectors

    with selectors.DefaultSelector() as sel:
      sel.register(proc.stdout, selectors.EVENT_READ)
      while True:
        left = deadline - time.monotonic()
        if left <= 0:
          break
        if sel.select(timeout=min(left, 1.0)):
          line = proc.stdout.readline()
          if not line:
            break
          lines.append(line)
          print(f"  {tag}| {line}" if tag else f"  | {line}", end="", flush=True)
    if time.monotonic() < deadline:
      code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
  except subprocess.TimeoutExpired:
    code = None
  finally:
    if proc.poll() is None:  # timed out: end the worker and what it started
      import signal

      try:
        os.killpg(proc.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
      proc.wait()
      code = None
    proc.stdout.close()
  text = "".join(lines)
  if log_path is not None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {' '.join(cmd)}\n{text}")
  return code, text



def model_bench_parser(doc: str) -> argparse.ArgumentParser:
  """The flags every per-model benchmark takes: --scales, --threads, --quick, --json_out."""
  parser = argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--scales", default="2,4", help="comma-separated scales")
  parser.add_argument("--threads", type=int, default=None, help="intra/inter-op threads")
  parser.add_argument("--quick", action="store_true", help="tiny networks and images")
  parser.add_argument("--json_out", type=pathlib.Path, help="write the results here as JSON")
  return parser
