"""Runs every FGRN benchmark and writes BENCHMARKS.md, a CSV and PNG plots.

  .venv/bin/python -m bench.run_all           # full: paper-sized x2/x4 networks, ~15 min
  .venv/bin/python -m bench.run_all --quick   # tiny networks and images: checks the code (CI)

Measured here (each thread count or device layout in a fresh process, since TensorFlow fixes
both when it starts): Keras latency of downscale, upscale and round trip at 256, 512 and 1024
HR with 1 and 2 threads; a training step in the default graph mode, with XLA and under
MirroredStrategy on 2 logical CPUs; FLOPs per module, the float32 peak and the achieved
fraction; a profile of one training step and one upscale. The other scripts in bench/
(train_throughput.py, export_latency.py, memory_vs_size.py, rate_distortion.py, serving.py) are
run too and their tables included. The report's layout is bench/report.py's, the plots
bench/plots.py's.

The full run writes BENCHMARKS.md at the repository root; --quick writes it in the results
folder (default results/bench/, git-ignored), so a smoke run never replaces the real report.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

from bench import common, plots, report
from bench.report import EXTERNAL, SECTIONS
from fgrn_tf import files


@dataclasses.dataclass(frozen=True)
class Plan:
  """What one run measures: the full benchmark or its tiny quick form."""

  quick: bool
  threads: tuple[int, ...] = (1, 2)
  scales: tuple[int, ...] = (2, 4)
  sizes: tuple[int, ...] = (256, 512, 1024)
  runs: int | None = None  # per size: keras_latency.DEFAULT_RUNS
  train_scales: tuple[int, ...] = (2, 4)
  batch: int = 4
  patch: int = 96
  train_steps: int = 5
  # The paper's batch and patch (36 x 192x192): ~40 s a step here, so 1 warm-up and 2 timed.
  paper_batch: int = 36
  paper_patch: int = 192
  paper_steps: int = 2
  flops_side: int = 512
  # TF leaves its oneDNN kernels off on CPUs without AVX-512 (as this one): these settings are
  # also measured with TF_ENABLE_ONEDNN_OPTS=1.
  onednn_sizes: tuple[int, ...] = (512,)
  worker_timeout: float = 900.0
  external_timeout: float = 3600.0  # a cap: memory_vs_size's 64 MP tiled case takes ~30 min

  @classmethod
  def make(cls, quick: bool, external_timeout: float | None = None) -> Plan:
    # Quick: one scale (x4 runs the same code), tiny sizes.
    plan = (cls(quick=True, scales=(2,), sizes=(64, 128), runs=2, train_scales=(2,), batch=2,
                patch=32, train_steps=2, paper_batch=3, paper_patch=48, flops_side=128,
                onednn_sizes=(128,), worker_timeout=300.0, external_timeout=180.0)
            if quick else cls(quick=False))
    if external_timeout is not None:
      plan = dataclasses.replace(plan, external_timeout=external_timeout)
    return plan


# ---- running ----------------------------------------------------------------------------------


ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "1"}
# The flag by which each of the other scripts takes a path for its JSON (memory_vs_size prints
# its table only).
JSON_FLAGS = {"train_throughput": "--json_out", "export_latency": "--out",
              "rate_distortion": "--json_out", "serving": "--json_out"}
# Scripts that write files of their own (CSV, plot) into the results folder.
OUTPUT_DIR_FLAGS = {"rate_distortion": "--output_dir"}


def _worker(script: str, args: list[str], plan: Plan, out: pathlib.Path, tag: str,
            env: dict | None = None) -> dict:
  """Runs one of our worker scripts; returns its JSON, or `{"error": ...}`.

  With `env`, its rows are marked `"variant": "oneDNN on"` (the only variant run here).
  """
  result, why, text = common.run_json_script(
      common.BENCH_DIR / script, [*args, *(["--quick"] if plan.quick else [])],
      out / "raw" / f"{tag}.json", timeout=plan.worker_timeout,
      log_path=out / "logs" / f"{tag}.log", tag=tag, env={common.WORKER_ENV: "1", **(env or {})})
  if result is None:
    return {"error": f"{script} {' '.join(args)}: {why}; see logs/{tag}.log",
            "tail": text.strip().splitlines()[-3:]}
  for row in result.get("rows", []):
    row["variant"] = report.ONEDNN_VARIANT if env else ""
  return result


def _workers(script: str, jobs, plan: Plan, out: pathlib.Path) -> dict:
  """Runs `script` once per `(args, tag, env)` of `jobs`: all their rows and errors."""
  rows, errors = [], []
  for args, tag, env in jobs:
    result = _worker(script, args, plan, out, tag, env)
    rows += result.get("rows", [])
    errors += [result["error"]] if "error" in result else []
  return {"rows": rows, "errors": errors}


def onednn_variant_needed(plan: Plan) -> bool:
  """Whether to measure with TF_ENABLE_ONEDNN_OPTS=1 too: where TF leaves oneDNN off by default
  (CPUs without AVX-512). Where it is on, the variant would repeat the default's figures."""
  return bool(plan.onednn_sizes) and common.onednn_enabled() is False


def run_latency(plan: Plan, out: pathlib.Path) -> dict:
  settings = [(threads, plan.sizes, None) for threads in plan.threads]
  settings += [(max(plan.threads), plan.onednn_sizes, ONEDNN)] if onednn_variant_needed(plan) \
      else []
  jobs = []
  for threads, sizes, env in settings:
    args = ["--threads", str(threads), "--scales", ",".join(map(str, plan.scales)),
            "--sizes", ",".join(map(str, sizes))]
    if plan.runs:
      args += ["--runs", str(plan.runs)]
    jobs.append((args, f"latency_{threads}t" + ("_onednn" if env else ""), env))
  return _workers("keras_latency.py", jobs, plan, out)


def run_train_modes(plan: Plan, out: pathlib.Path) -> dict:
  jobs = [(["--modes", modes, "--scales", ",".join(map(str, plan.train_scales)),
            "--batch", str(plan.batch), "--patch", str(plan.patch),
            "--steps", str(plan.train_steps)],
           f"train_{modes.replace(',', '_')}" + ("_onednn" if env else ""), env)
          for modes, env in (("default,xla", None), ("mirrored", None), ("default", ONEDNN))
          if env is None or onednn_variant_needed(plan)]
  return _workers("train_modes.py", jobs, plan, out)


def run_train_paper(plan: Plan, out: pathlib.Path) -> dict:
  """A training step at the paper's batch and patch, one process per scale (its peak RSS)."""
  jobs = [(["--modes", "default", "--scales", str(scale), "--batch", str(plan.paper_batch),
            "--patch", str(plan.paper_patch), "--steps", str(plan.paper_steps), "--warmup", "1"],
           f"train_paper_x{scale}", None) for scale in plan.train_scales]
  return _workers("train_modes.py", jobs, plan, out)


def run_flops_and_profile(plan: Plan, results: dict, sections) -> None:
  """FLOPs/peak and the profiles, in this process (TF with its default threads: all cores)."""
  from bench import flops, profile_step

  common.configure_tf()
  up = {r["scale"]: r["median"] for r in results.get("latency", {}).get("rows", [])
        if r["op"] == "upscale" and r["size"] == plan.flops_side and r["threads"] == 2
        and not r.get("variant")}
  step = {r["scale"]: r["median"] for r in results.get("train_modes", {}).get("rows", [])
          if r["mode"] == "default" and "median" in r and not r.get("variant")}
  if "flops" in sections:
    try:
      results["flops"] = flops.measure(plan.train_scales, plan.quick, up, step, plan.batch,
                                       plan.patch, plan.flops_side)
    except Exception as e:  # report it; the other sections still stand
      results["flops"] = {"error": f"{type(e).__name__}: {e}"}
  if "profile" in sections:
    try:
      results["profile"] = {"rows": [
          profile_step.profile(s, plan.quick, plan.flops_side, plan.batch, plan.patch)
          for s in plan.train_scales]}
    except Exception as e:
      results["profile"] = {"error": f"{type(e).__name__}: {e}"}


def run_external(name: str, plan: Plan, out: pathlib.Path,
                 bench_dir: pathlib.Path = common.BENCH_DIR) -> dict:
  """Runs bench/<name>.py, with --quick in a quick run and a path for its JSON output.

  Returns:
    `{"status": "ok" | "exit code N" | "timed out after N s", "output": str,
    "json": dict | None}`.
  """
  script = bench_dir / f"{name}.py"
  args = ["--quick"] if plan.quick else []
  json_path = out / "raw" / f"{name}.json"
  json_path.parent.mkdir(parents=True, exist_ok=True)
  json_path.unlink(missing_ok=True)
  if name in JSON_FLAGS:
    args += [JSON_FLAGS[name], str(json_path)]
  if name in OUTPUT_DIR_FLAGS:
    args += [OUTPUT_DIR_FLAGS[name], str(out)]
  common.progress(name, f"running {script.name} {' '.join(args)}")
  code, text = common.run_script(script, args, timeout=plan.external_timeout,
                                 log_path=out / "logs" / f"{name}.log", tag=name,
                                 env={common.WORKER_ENV: "1"})
  status = "ok" if code == 0 else (
      f"timed out after {plan.external_timeout:.0f} s" if code is None else f"exit code {code}")
  data = None
  if json_path.exists():
    try:
      data = json.loads(json_path.read_text())
    except ValueError:
      data = None
  return {"status": status, "output": text, "json": data}


# ---- main -------------------------------------------------------------------------------------


def render(results: dict, out: pathlib.Path, report_path: pathlib.Path) -> list[str]:
  """results.csv, the plots and the report from `results`; the plots' file names."""
  report.write_csv(report.csv_rows(results), out / "results.csv")
  written = plots.plot_all(results, out)
  if "rate_distortion" in results and (out / "rate_distortion.png").exists():
    written.append("rate_distortion.png")  # drawn by the script itself, beside its CSV
  report.write_report(results, written, out, report_path)
  return written


def run(plan: Plan, out: pathlib.Path, report_path: pathlib.Path, sections,
        reused: dict | None = None) -> dict:
  """Runs the `sections` of `plan`, writes results.csv, results.json, plots and the report.

  `reused` holds sections taken from an earlier results.json instead of being run again.
  """
  out.mkdir(parents=True, exist_ok=True)
  start = time.time()
  results = {"machine": common.machine_info(), "quick": plan.quick,
             "plan": dataclasses.asdict(plan), **(reused or {})}
  common.progress("run_all", f"{'quick' if plan.quick else 'full'} run; machine "
                             f"{results['machine']['cpu']}, load {results['machine']['loadavg']}")
  ran = results.setdefault("ran", {})

  def timed(names, fn):
    # Sections of one report may come from different runs (--reuse): each keeps its own date
    # and load, so a figure measured on a busy machine can be told apart.
    stamp = {"date": common.utc_now(), "load_before": common.load_average()}
    value = fn()
    stamp["load_after"] = common.load_average()
    ran.update({n: stamp for n in names})
    return value

  if "latency" in sections:
    results["latency"] = timed(["latency"], lambda: run_latency(plan, out))
  if "train_modes" in sections:
    results["train_modes"] = timed(["train_modes"], lambda: run_train_modes(plan, out))
  if "train_paper" in sections:
    results["train_paper"] = timed(["train_paper"], lambda: run_train_paper(plan, out))
  for name, _ in EXTERNAL:
    if name in sections:
      results[name] = timed([name], lambda name=name: run_external(name, plan, out))
  if {"flops", "profile"} & set(sections):
    timed(sorted({"flops", "profile"} & set(sections)),
          lambda: run_flops_and_profile(plan, results, sections))
  results["minutes"] = (time.time() - start) / 60
  files.write_json(out / "results.json", results)
  written = render(results, out, report_path)
  common.progress("run_all", f"wrote {report_path}, {out / 'results.csv'} and {len(written)} "
                             f"plots in {results['minutes']:.1f} min")
  return results


def main(argv=None) -> int:
  parser = common.script_parser(__doc__)
  parser.add_argument("--quick", action="store_true",
                      help="tiny networks and images: checks the code in ~2 minutes")
  parser.add_argument("--results_dir", type=pathlib.Path, default=None,
                      help="where the CSV, plots, raw JSON and logs go (default: docs/benchmarks/, "
                           "kept in the repository beside BENCHMARKS.md; results/bench/ with "
                           "--quick)")
  parser.add_argument("--report", type=pathlib.Path, default=None,
                      help="the markdown report (default: BENCHMARKS.md at the repository root, "
                           "or in the results folder with --quick)")
  parser.add_argument("--skip", default="", help=f"comma-separated sections from {SECTIONS}")
  parser.add_argument("--reuse", default="",
                      help="comma-separated sections to take from the results folder's last "
                           "results.json instead of running them again (e.g. to rerun one "
                           "section alone)")
  parser.add_argument("--render_only", action="store_true",
                      help="measure nothing: rewrite the report, CSV and plots from the results "
                           "folder's results.json, with the machine it records")
  parser.add_argument("--external_timeout", type=float, default=None,
                      help="seconds allowed to each of the other bench scripts")
  args = parser.parse_args(argv)
  args.results_dir = args.results_dir or (common.ROOT / "results" / "bench" if args.quick
                                          else common.ROOT / "docs" / "benchmarks")
  skip = {s for s in args.skip.split(",") if s}
  reuse = {s for s in args.reuse.split(",") if s}
  for flag, names in (("--skip", skip), ("--reuse", reuse)):
    if names - set(SECTIONS):
      parser.error(f"{flag}: unknown {sorted(names - set(SECTIONS))}; choose from {SECTIONS}")
  report_path = args.report or (args.results_dir / "BENCHMARKS.md" if args.quick
                                else common.ROOT / "BENCHMARKS.md")
  if args.render_only:
    try:
      results = json.loads((args.results_dir / "results.json").read_text())
    except (OSError, ValueError) as e:
      print(f"error: --render_only needs {args.results_dir / 'results.json'}: {e}",
            file=sys.stderr)
      return 2
    render(results, args.results_dir, report_path)
    return 0
  try:
    reused = load_sections(args.results_dir / "results.json", reuse, args.quick)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  run(Plan.make(args.quick, args.external_timeout), args.results_dir, report_path,
      [s for s in SECTIONS if s not in skip | reuse], reused)
  return 0


def load_sections(path: pathlib.Path, names: set[str], quick: bool) -> dict:
  """The `names` sections of an earlier results.json; ValueError when it cannot give them."""
  if not names:
    return {}
  try:
    earlier = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ValueError(f"--reuse needs an earlier {path}: {e}") from None
  here, there = common.machine_info(), earlier.get("machine", {})
  if common.machine_key(here) != common.machine_key(there):
    raise ValueError(f"--reuse: {path} was measured on another machine ({common.machine_key(there)}"
                     f"; this one: {common.machine_key(here)}); a report holds one machine's "
                     "figures, so run every section here")
  if earlier.get("quick") != quick:
    raise ValueError(f"--reuse: {path} is from a {'quick' if earlier.get('quick') else 'full'} "
                     "run; reuse only sections of the same kind of run")
  missing = sorted(n for n in names if n not in earlier)
  if missing:
    raise ValueError(f"--reuse: {path} has no {', '.join(missing)}")
  sections = {n: earlier[n] for n in names}
  ran = {n: earlier["ran"][n] for n in names if n in earlier.get("ran", {})}
  return {**sections, "ran": ran} if ran else sections


if __name__ == "__main__":
  sys.exit(main())
