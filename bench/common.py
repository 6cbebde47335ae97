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

from fgrn_tf import tf_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"

# The official IRN (PyTorch 2.13 CPU, 2 threads) and FGRN-TF measured side by side on one
# machine, two rounds alternating within the same hour (2026-12-01). A speed-up is a ratio of
# figures from one machine and one sitting: IRN cannot run here, so this comparison is kept as
# recorded, both columns together, and never divided by figures of the current run.
IRN_SIDE_BY_SIDE = {
    "machine": "AMD EPYC, 2 cores, avx2 avx512f avx512_bf16, TF 2.21.0 with oneDNN on "
               "(its default there)",
    # (what, unit, IRN rounds, FGRN-TF rounds, aim as a speed-up)
    "rows": (
        ("x2 512x512 round trip", "s", (7.26, 6.76), (1.76, 1.72), 3.0),
        ("x4 512x512 round trip", "s", (8.24, 7.98), (0.79, 0.72), 3.0),
        ("x2 training, batch 4, 96x96", "steps/s", (0.531, 0.523), (2.15, 1.89), 2.0),
        ("x4 training, batch 4, 96x96", "steps/s", (0.322, 0.375), (2.96, 3.09), 2.0),
    ),
}
# The CPU features that change TF's kernels and speed (oneDNN, bf16, AMX): every report names
# them, since figures from CPUs with and without them differ 3x.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
             "amx_int8")


def cpu_model_and_flags() -> tuple[str, list[str]]:
  """The CPU's model name and which of `CPU_FLAGS` it has (Linux /proc/cpuinfo)."""
  cpu, flags = platform.processor() or platform.machine(), set()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      key, _, value = line.partition(":")
      if key.strip() == "model name" and cpu == (platform.processor() or platform.machine()):
        cpu = value.strip()
      elif key.strip() == "flags" and not flags:
        flags = set(value.split())
  except OSError:
    pass
  return cpu, [f for f in CPU_FLAGS if f in flags]


def onednn_enabled(env: dict | None = None) -> bool | None:
  """Whether TensorFlow runs its oneDNN kernels with `env`'s TF_ENABLE_ONEDNN_OPTS.

  TF decides at start-up from the CPU (on by default with AVX-512) and TF_ENABLE_ONEDNN_OPTS.
  A process that has loaded TF under that setting answers itself; otherwise a fresh process is
  asked, so that the question alone never loads TF here (a JAX run has no use for it).
  """
  env = {**os.environ, **tf_env.DEFAULTS, **(env or {})}
  # One answer per setting in a process: TF decides from the CPU and this variable alone, and
  # each question costs a TensorFlow start (seconds).
  setting = env.get("TF_ENABLE_ONEDNN_OPTS")
  if setting not in _ONEDNN_ANSWERS:
    _ONEDNN_ANSWERS[setting] = _ask_onednn(env)
  return _ONEDNN_ANSWERS[setting]


_ONEDNN_ANSWERS: dict[str | None, bool | None] = {}


def _ask_onednn(env: dict) -> bool | None:
  if (sys.modules.get("tensorflow") is not None
      and env.get("TF_ENABLE_ONEDNN_OPTS") == os.environ.get("TF_ENABLE_ONEDNN_OPTS")):
    # TF is loaded already, under this very setting: its answer costs nothing here.
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
  code = ("from fgrn_tf import tf_env; tf_env.skip_optional_imports(); "
          "from tensorflow.python.util import _pywrap_util_port as p; "
          "print(int(p.IsMklEnabled()))")
  try:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    return bool(int(out.stdout.strip().splitlines()[-1]))
  except (OSError, subprocess.SubprocessError, ValueError, IndexError):
    return None


def machine_info(probe_tf: bool = True) -> dict:
  """CPU model and flags, TF's oneDNN state, cores, versions, date and load: every report's head.

  Args:
    probe_tf: ask TF (in a fresh process, a few seconds) whether its oneDNN kernels are on.
  """
  cpu, flags = cpu_model_and_flags()
  info = {
      "cpu": cpu,
      "cpu_flags": flags,
      "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
      "logical_cores": os.cpu_count(),
      "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "python": platform.python_version(),
      "platform": platform.platform(),
      "date": utc_now(),
      "loadavg": load_average(),
  }
  if probe_tf:
    info["onednn"] = onednn_enabled()
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


def machine_key(info: dict) -> str:
  """What must match for two figures to share a ratio: CPU model, its flags, cores, oneDNN."""
  flags = info.get("cpu_flags")
  return (f"{info.get('cpu')} | {' '.join(flags) if flags is not None else 'flags unknown'} | "
          f"{info.get('usable_cores')} cores | oneDNN {describe_onednn(info)}")


def describe_onednn(info: dict) -> str:
  state = info.get("onednn")
  text = "unknown" if state is None else ("on" if state else "off")
  env = info.get("tf_enable_onednn_opts", "unset")
  return text + ("" if env == "unset" else f" (TF_ENABLE_ONEDNN_OPTS={env})")


def machine_line(info: dict, peak_gflops: float | None = None) -> str:
  """One line naming the machine, for the head of a script's printed figures."""
  flags = info.get("cpu_flags")
  peak = f"; float32 matmul peak {peak_gflops:.1f} GFLOP/s" if peak_gflops else ""
  return (f"machine: {info.get('cpu')}, {info.get('usable_cores')} cores, flags "
          f"{' '.join(flags) if flags else 'none of ' + '/'.join(CPU_FLAGS[:3])}, "
          f"TF oneDNN {describe_onednn(info)}{peak}")


WORKER_ENV = "FGRN_BENCH_WORKER"


def announce(tag: str) -> dict | None:
  """Prints the machine line (CPU, flags, oneDNN, float32 peak) at the start of a benchmark.

  The peak comes from `flops.py --peak_only` in a fresh process with TF's default threads, so
  the figures that follow can be read against the limit of the same machine at the same
  time. A worker started by `run_all.py` skips it: its runner records the machine once.

  Returns:
    The machine info with `"peak_gflops"`, or None in a worker.
  """
  if os.environ.get(WORKER_ENV):
    return None
  info = machine_info()
  _, text = run_script(BENCH_DIR / "flops.py", ["--peak_only"], timeout=600)
  peaks = [line.split()[1] for line in text.splitlines() if line.startswith("peak_gflops ")]
  info["peak_gflops"] = float(peaks[-1]) if peaks else None
  progress(tag, machine_line(info, info["peak_gflops"]))
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


def round_trip_psnr(model, scale: int, image_dir: str, out: pathlib.Path,
                    precision: str = "float32") -> float:
  """Mean Y PSNR of `model`'s round trip (`fgrn-eval`'s protocol) on one image folder;
  `model` is what `fgrn-eval --model` takes (None: the shipped model), `out` a new folder."""
  from fgrn_tf.evaluate import evaluator

  results = evaluator.evaluate(["fgrn"], scale, [image_dir], out, model=model,
                              niqe_params="none", progress=False, precision=precision)
  (name,) = results["datasets"]
  return results["datasets"][name]["methods"]["fgrn"]["psnr"]


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


def run_json_script(script: pathlib.Path, args: Sequence[str], json_path: pathlib.Path,
                    timeout: float, log_path: pathlib.Path | None = None, tag: str = "",
                    env: dict | None = None) -> tuple[dict | None, str, str]:
  """Runs `python script args --json_out json_path` (see `run_script`) and reads its JSON.

  Returns:
    (the JSON the script wrote, or None when it failed; why it failed, "timed out" or
    "exit code N", else ""; the captured output).
  """
  json_path.unlink(missing_ok=True)  # a file left by an earlier run is no result of this one
  code, text = run_script(script, [*args, "--json_out", str(json_path)], timeout,
                          log_path=log_path, tag=tag, env=env)
  if code != 0 or not json_path.exists():
    return None, "timed out" if code is None else f"exit code {code}", text
  return json.loads(json_path.read_text()), "", text


def script_parser(doc: str) -> argparse.ArgumentParser:
  """An argument parser whose --help shows the script's docstring `doc` as written."""
  return argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def model_bench_parser(doc: str) -> argparse.ArgumentParser:
  """The flags every per-model benchmark takes: --scales, --threads, --quick, --json_out."""
  parser = script_parser(doc)
  parser.add_argument("--scales", default="2,4", help="comma-separated scales")
  parser.add_argument("--threads", type=int, default=None, help="intra/inter-op threads")
  parser.add_argument("--quick", action="store_true", help="tiny networks and images")
  parser.add_argument("--json_out", type=pathlib.Path, help="write the results here as JSON")
  return parser
