"""Runs every FGRN benchmark and writes BENCHMARKS.md, a CSV and PNG plots.

  .venv/bin/python -m bench.run_all           # full: paper-sized x2/x4 networks, ~15 min
  .venv/bin/python -m bench.run_all --quick   # tiny networks and images: checks the code (CI)

Measured here (each thread count or device layout in a fresh process, since TensorFlow fixes
both when it starts): Keras latency of downscale, upscale and round trip at 256, 512 and 1024
HR with 1 and 2 threads; a training step in the default graph mode, with XLA and under
MirroredStrategy on 2 logical CPUs; FLOPs per module, the float32 peak and the achieved
fraction; a profile of one training step and one upscale. The other scripts in bench/
(train_throughput.py, export_latency.py, memory_vs_size.py) are run when present and their
tables included; a missing one is reported as "not available".

The full run writes BENCHMARKS.md at the repository root; --quick writes it in the results
folder (default results/bench/, git-ignored), so a smoke run never replaces the real report.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import json
import pathlib
import re
import sys
import time

from bench import common  # noqa: E402

# Other engineers' scripts: (name, title). Run when present.
EXTERNAL = (
    ("train_throughput", "Training throughput with the input pipeline"),
    ("export_latency", "SavedModel and TFLite: size, agreement, latency"),
    ("memory_vs_size", "Peak memory of a round trip against image size"),
)
OWN = ("latency", "train_modes", "train_paper", "flops", "profile")
# What the figures mean and what was done about them: written by hand, appended to the report.
FINDINGS = common.BENCH_DIR / "FINDINGS.md"
SECTIONS = OWN + tuple(name for name, _ in EXTERNAL)


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
    plan = (cls(quick=True, sizes=(64, 128), runs=2, train_scales=(2,), batch=2, patch=32,
                train_steps=2, paper_batch=3, paper_patch=48, flops_side=128,
                onednn_sizes=(128,), worker_timeout=300.0, external_timeout=180.0)
            if quick else cls(quick=False))
    if external_timeout is not None:
      plan = dataclasses.replace(plan, external_timeout=external_timeout)
    return plan


# ---- running ----------------------------------------------------------------------------------


ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "1"}
ONEDNN_VARIANT = "oneDNN on"


def _worker(script: str, args: list[str], plan: Plan, out: pathlib.Path, tag: str,
            env: dict | None = None) -> dict:
  """Runs one of our worker scripts; returns its JSON, or `{"error": ...}`.

  With `env`, its rows are marked `"variant": "oneDNN on"` (the only variant run here).
  """
  json_path = out / "raw" / f"{tag}.json"
  json_path.unlink(missing_ok=True)
  code, text = common.run_script(common.BENCH_DIR / script,
                                 [*args, *(["--quick"] if plan.quick else []),
                                  "--json_out", str(json_path)],
                                 timeout=plan.worker_timeout, log_path=out / "logs" / f"{tag}.log",
                                 tag=tag, env={common.WORKER_ENV: "1", **(env or {})})
  if code != 0 or not json_path.exists():
    why = "timed out" if code is None else f"exit code {code}"
    return {"error": f"{script} {' '.join(args)}: {why}; see logs/{tag}.log",
            "tail": text.strip().splitlines()[-3:]}
  result = json.loads(json_path.read_text())
  for row in result.get("rows", []):
    row["variant"] = ONEDNN_VARIANT if env else ""
  return result


def run_latency(plan: Plan, out: pathlib.Path) -> dict:
  rows, errors = [], []
  settings = [(threads, plan.sizes, None) for threads in plan.threads]
  settings += [(max(plan.threads), plan.onednn_sizes, ONEDNN)] if plan.onednn_sizes else []
  for threads, sizes, env in settings:
    args = ["--threads", str(threads), "--scales", ",".join(map(str, plan.scales)),
            "--sizes", ",".join(map(str, sizes))]
    if plan.runs:
      args += ["--runs", str(plan.runs)]
    tag = f"latency_{threads}t" + ("_onednn" if env else "")
    result = _worker("keras_latency.py", args, plan, out, tag, env)
    rows += result.get("rows", [])
    errors += [result["error"]] if "error" in result else []
  return {"rows": rows, "errors": errors}


def run_train_modes(plan: Plan, out: pathlib.Path) -> dict:
  rows, errors = [], []
  for modes, env in (("default,xla", None), ("mirrored", None), ("default", ONEDNN)):
    args = ["--modes", modes, "--scales", ",".join(map(str, plan.train_scales)),
            "--batch", str(plan.batch), "--patch", str(plan.patch),
            "--steps", str(plan.train_steps)]
    tag = f"train_{modes.replace(',', '_')}" + ("_onednn" if env else "")
    result = _worker("train_modes.py", args, plan, out, tag, env)
    rows += result.get("rows", [])
    errors += [result["error"]] if "error" in result else []
  return {"rows": rows, "errors": errors}


def run_train_paper(plan: Plan, out: pathlib.Path) -> dict:
  """A training step at the paper's batch and patch, one process per scale (its peak RSS)."""
  rows, errors = [], []
  for scale in plan.train_scales:
    args = ["--modes", "default", "--scales", str(scale), "--batch", str(plan.paper_batch),
            "--patch", str(plan.paper_patch), "--steps", str(plan.paper_steps), "--warmup", "1"]
    result = _worker("train_modes.py", args, plan, out, f"train_paper_x{scale}")
    rows += result.get("rows", [])
    errors += [result["error"]] if "error" in result else []
  return {"rows": rows, "errors": errors}


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


def script_flags(script: pathlib.Path) -> set[str]:
  """The `--flags` a bench script declares (argparse or absl), read from its source."""
  text = script.read_text()
  flags = set(re.findall(r"add_argument\(\s*['\"](--[\w-]+)", text))
  flags |= {f"--{name}" for name in re.findall(r"DEFINE_\w+\(\s*['\"](\w+)", text)}
  return flags


def run_external(name: str, plan: Plan, out: pathlib.Path,
                 bench_dir: pathlib.Path = common.BENCH_DIR) -> dict:
  """Runs bench/<name>.py if it exists, with --quick and a JSON output flag when it has them.

  Returns:
    `{"status": "ok" | "not available" | "failed: ..." , "output": str, "json": dict | None}`.
  """
  script = bench_dir / f"{name}.py"
  if not script.exists():
    common.progress(name, "not available")
    return {"status": "not available", "output": "", "json": None}
  flags = script_flags(script)
  args = ["--quick"] if plan.quick and "--quick" in flags else []
  json_path = out / "raw" / f"{name}.json"
  json_path.parent.mkdir(parents=True, exist_ok=True)
  json_path.unlink(missing_ok=True)
  json_flag = next((f for f in ("--json_out", "--out") if f in flags), None)
  if json_flag:
    args += [json_flag, str(json_path)]
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


# ---- tables -----------------------------------------------------------------------------------


def csv_rows(results: dict) -> list[dict]:
  """All figures in one long table: section, scale, case, threads, metric, median/min/max."""
  rows = []

  def add(section, scale, case, threads, metric, median, lo=None, hi=None, runs=None, unit="",
          variant=""):
    rows.append({"section": section, "scale": scale, "case": case, "threads": threads,
                 "variant": variant, "metric": metric, "median": median, "min": lo, "max": hi,
                 "runs": runs, "unit": unit})

  for r in results.get("latency", {}).get("rows", []):
    add("latency", r["scale"], f"{r['op']} {r['size']}x{r['size']}", r["threads"], "seconds",
        r["median"], r["min"], r["max"], r["runs"], "s", r.get("variant", ""))
  for r in (results.get("train_modes", {}).get("rows", [])
            + results.get("train_paper", {}).get("rows", [])):
    case = f"{r['mode']} b{r['batch']} {r['patch']}x{r['patch']}"
    v = r.get("variant", "")
    if "median" in r:
      add("train_modes", r["scale"], case, "", "steps_per_s", 1 / r["median"], 1 / r["max"],
          1 / r["min"], r["runs"], "steps/s", v)
      add("train_modes", r["scale"], case, "", "hr_mpix_per_s", r["hr_mpix_per_s"],
          unit="Mpix/s", variant=v)
    else:
      add("train_modes", r["scale"], case, "", "error", r.get("error", ""), variant=v)
  flops = results.get("flops", {})
  if "peak" in flops:
    add("flops", "", f"matmul {flops['peak']['n']}", "", "peak_gflops_per_s",
        flops["peak"]["gflops"], runs=flops["peak"]["runs"], unit="GFLOP/s")
  for r in flops.get("rows", []):
    for module, v in r["module_gflops"].items():
      add("flops", r["scale"], f"{module} per {r['hr_side']}x{r['hr_side']}", "", "gflops", v,
          unit="GFLOP")
    for op, v in r["op_gflops"].items():
      add("flops", r["scale"], op, "", "gflops", v, unit="GFLOP")
      if op in r["profiler_gflops"]:
        add("flops", r["scale"], op, "", "profiler_gflops", r["profiler_gflops"][op],
            unit="GFLOP")
    add("flops", r["scale"], "upscale", "", "fraction_of_peak", r["upscale_fraction"])
    add("flops", r["scale"], "train_step", "", "fraction_of_peak", r["train_fraction"])
  for r in results.get("profile", {}).get("rows", []):
    for what in ("upscale", "train_step"):
      for o in r[what]["by_type"]:
        add("profile", r["scale"], f"{what} {o['op']}", "", "share_of_op_time", o["share"])
      for o in r[what]["by_module"]:
        add("profile", r["scale"], f"{what} module {o['module']}", "", "share_of_op_time",
            o["share"])
  tt = (results.get("train_throughput") or {}).get("json") or {}
  for r in tt.get("rows", []) if isinstance(tt, dict) else []:
    for key in ("real", "constant"):
      if isinstance(r, dict) and key in r:
        add("train_throughput", r.get("scale"), f"{key} data b{r.get('batch')} "
            f"{r.get('patch')}x{r.get('patch')}", "", "steps_per_s", r[key], unit="steps/s")
  return rows


def write_csv(rows: list[dict], path: pathlib.Path) -> None:
  with path.open("w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["section"])
    writer.writeheader()
    writer.writerows(rows)


def _fmt_s(r) -> str:
  return f"{r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}]"


def latency_table(rows) -> list[str]:
  lines = ["| scale | HR size | threads | kernels | downscale (s) | upscale (s) | "
           "round trip (s) |", "|---|---|---|---|---|---|---|"]
  keyed = {(r["scale"], r["size"], r["threads"], r.get("variant", ""), r["op"]): r for r in rows}
  for scale, size, threads, variant in sorted({k[:4] for k in keyed}):
    cells = [_fmt_s(keyed[(scale, size, threads, variant, op)])
             if (scale, size, threads, variant, op) in keyed else "-"
             for op in ("downscale", "upscale", "roundtrip")]
    lines.append(f"| x{scale} | {size}x{size} | {threads} | {variant or 'TF default'} | "
                 + " | ".join(cells) + " |")
  return lines


def _mode(r) -> str:
  return f"{r['mode']} ({r['variant']})" if r.get("variant") else r["mode"]


def train_modes_table(rows) -> list[str]:
  lines = ["| scale | mode | batch x patch | steps/s | s/step median [min, max] | HR Mpix/s | "
           "first steps (trace, compile) |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    head = f"| x{r['scale']} | {_mode(r)} | {r['batch']} x {r['patch']}x{r['patch']} |"
    if "median" in r:
      lines.append(f"{head} {r['steps_per_s']:.3f} | {_fmt_s(r)} | {r['hr_mpix_per_s']:.3f} | "
                   f"{r['first_step_s']:.1f} s |")
    else:
      lines.append(f"{head} fails | {r.get('error', '')} | | |")
  return lines


def flops_tables(flops: dict) -> list[str]:
  peak = flops["peak"]
  lines = [f"Peak: **{peak['gflops']:.1f} GFLOP/s** float32 (median of {peak['runs']} "
           f"{peak['n']}x{peak['n']} matmuls in TF, all cores; best {peak['gflops_max']:.1f}).",
           "", "| scale | params | Gd | F (one pass) | Gu | downscale | upscale | round trip | "
           "training step | TF profiler: down / up / step |", "|---" * 10 + "|"]
  for r in flops["rows"]:
    m, o, p = r["module_gflops"], r["op_gflops"], r["profiler_gflops"]
    lines.append(
        f"| x{r['scale']} | {r['params']:,} | {m['Gd']:.2f} | {m['F']:.2f} | {m['Gu']:.2f} | "
        f"{o['downscale']:.2f} | {o['upscale']:.2f} | {o['roundtrip']:.2f} | "
        f"{o['train_step']:.2f} | {p['downscale']:.2f} / {p['upscale']:.2f} / "
        f"{p['train_step']:.2f} |")
  side, b, ps = flops["rows"][0]["hr_side"], flops["rows"][0]["batch"], flops["rows"][0]["patch"]
  lines += ["", f"GFLOP per {side}x{side} HR image (modules and rescaling ops) and per training "
            f"step (batch {b}, {ps}x{ps}); 2 FLOPs per multiply-add, convolutions only. The TF "
            "profiler also counts element-wise ops and the Adam update.", "",
            "| scale | upscale (s) | upscale GFLOP/s | of peak | training step (s) | "
            "training GFLOP/s | of peak |", "|---|---|---|---|---|---|---|"]
  for r in flops["rows"]:
    lines.append(f"| x{r['scale']} | {r['upscale_s']:.3f} | {r['upscale_gflops_per_s']:.1f} | "
                 f"{100 * r['upscale_fraction']:.0f}% | {r['step_s']:.3f} | "
                 f"{r['train_gflops_per_s']:.1f} | {100 * r['train_fraction']:.0f}% |")
  return lines


def profile_tables(profile: dict) -> list[str]:
  lines = []
  for r in profile["rows"]:
    for what, title in (("train_step", f"training step (batch {r['batch']}, "
                                       f"{r['patch']}x{r['patch']})"),
                        ("upscale", f"upscale to {r['hr_side']}x{r['hr_side']}")):
      p = r[what]
      lines += [f"**x{r['scale']} {title}**: wall {p['wall_s']:.3f} s, op time "
                f"{p['op_s']:.3f} s (summed over threads). By module: "
                + ", ".join(f"{o['module']} {100 * o['share']:.0f}%" for o in p["by_module"])
                + ".", "", "| op type | seconds | share |", "|---|---|---|"]
      lines += [f"| {o['op']} | {o['s']:.3f} | {100 * o['share']:.1f}% |"
                for o in p["by_type"][:8]]
      lines.append("")
  return lines


def comparison_table() -> list[str]:
  """FGRN-TF against the official IRN, as measured side by side on one machine, with the aims.

  Both columns come from one sitting on the machine it names (common.IRN_SIDE_BY_SIDE): IRN does
  not run here, and a ratio of its figures to this run's would mix two machines.
  """
  side = common.IRN_SIDE_BY_SIDE
  lines = [f"Measured side by side on {side['machine']}: the official IRN (PyTorch 2.13 CPU, "
           "2 threads) and FGRN-TF in two rounds alternating within one hour; not remeasured "
           "by this run (IRN is not installed here), so these figures may come from another "
           "machine than the tables below.", "",
           "| what | IRN rounds | FGRN-TF rounds | speed-up (mean) | aim | |",
           "|---|---|---|---|---|---|"]
  for what, unit, irn, ours, aim in side["rows"]:
    irn_mean, ours_mean = sum(irn) / len(irn), sum(ours) / len(ours)
    speedup = irn_mean / ours_mean if unit == "s" else ours_mean / irn_mean
    verdict = "met" if speedup >= aim else ("faster, short of aim" if speedup >= 1 else "SLOWER")
    lines.append(f"| {what} ({unit}) | {' / '.join(map(str, irn))} | "
                 f"{' / '.join(map(str, ours))} | {speedup:.2f}x | {aim:.0f}x | {verdict} |")
  return lines


# Progress lines (also those a script echoes from its own workers, "  tag| ..."), TF/TFLite
# log lines and "wrote FILE" lines are left out of the report.
_NOISE = re.compile(r"^(\[\d\d:\d\d:\d\d\] |\s+[\w.-]+\| |INFO|WARNING|[IWE]\d{4} |wrote )")


def _output(name: str, res: dict) -> str:
  """The script's printed report, drawn again from its JSON when it has a `report` function
  (so a report reused with --reuse follows the script's current layout)."""
  try:
    module = importlib.import_module(f"bench.{name}")
  except ImportError:
    module = None
  if res.get("json") and callable(getattr(module, "report", None)):
    try:
      return module.report(res["json"])
    except (KeyError, TypeError, ValueError):
      pass  # JSON of an older layout: keep what the script printed then
  return res["output"]


def external_section(name: str, title: str, res: dict | None) -> list[str]:
  lines = [f"## {title} (`bench/{name}.py`)", ""]
  if res is None:
    return lines + ["Skipped in this run.", ""]
  if res["status"] == "not available":
    return lines + [f"Not available: `bench/{name}.py` does not exist yet.", ""]
  if res["status"] != "ok":
    lines += [f"**Did not finish: {res['status']}** (log: `logs/{name}.log`).", ""]
  text = [ln for ln in _output(name, res).splitlines()
          if not _NOISE.match(ln) and "Warning" not in ln]
  tables = [i for i, ln in enumerate(text) if ln.startswith("|")]
  if tables:  # the script printed markdown: keep it from the text line before its first table
    first = next((i for i in range(tables[0] - 1, -1, -1) if text[i].strip()), tables[0])
    in_table = False
    for ln in text[first:]:
      if (ln.startswith("|") != in_table or not ln.strip()) and lines[-1] != "":
        lines.append("")  # a table needs blank lines around it; one blank line is enough
      in_table = ln.startswith("|")
      if ln.strip():
        lines.append("#" + ln if ln.startswith("#") else ln)  # one heading level down
  else:
    lines += ["```", *text[-40:], "```"]
  return lines + [""]


# ---- plots ------------------------------------------------------------------------------------


def plot_all(results: dict, out: pathlib.Path) -> list[str]:
  """Writes the PNG plots that have data; returns their file names."""
  import matplotlib

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  written = []

  def save(fig, name):
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    written.append(name)

  rows = results.get("latency", {}).get("rows", [])
  scales = sorted({r["scale"] for r in rows})
  if rows:
    fig, axes = plt.subplots(1, len(scales), figsize=(5.5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales, strict=True):
      for threads in sorted({r["threads"] for r in rows}):
        for op, style in (("roundtrip", "-o"), ("downscale", "--s"), ("upscale", ":^")):
          pts = sorted((r["size"], r["median"], r["min"], r["max"]) for r in rows
                       if r["scale"] == scale and r["threads"] == threads and r["op"] == op
                       and not r.get("variant"))
          if not pts:
            continue
          x, med, lo, hi = zip(*pts, strict=True)
          ax.errorbar(x, med, yerr=[[max(0, m - v) for m, v in zip(med, lo, strict=True)],
                                    [max(0, v - m) for m, v in zip(med, hi, strict=True)]],
                      fmt=style, capsize=3, label=f"{op}, {threads} thread(s)")
      extra = sorted((r["size"], r["median"]) for r in rows if r["scale"] == scale
                     and r["op"] == "roundtrip" and r.get("variant"))
      if extra:
        ax.plot(*zip(*extra, strict=True), "kx", ms=9, label=f"round trip, {ONEDNN_VARIANT}")
      ax.set(xscale="log", yscale="log", xlabel="HR side (pixels)", ylabel="seconds per image",
             title=f"FGRN x{scale} (Keras) latency")
      sides = sorted({r["size"] for r in rows})
      ax.set_xticks(sides, [str(s) for s in sides])
      ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
      ax.legend(fontsize=7)
    save(fig, "latency.png")

  rows = [r for r in results.get("train_modes", {}).get("rows", []) if "steps_per_s" in r]
  if rows:
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"x{r['scale']} {_mode(r)}" for r in rows]
    ax.bar(labels, [r["steps_per_s"] for r in rows],
           yerr=[[r["steps_per_s"] - 1 / r["max"] for r in rows],
                 [1 / r["min"] - r["steps_per_s"] for r in rows]], capsize=3)
    ax.set(ylabel="training steps/s", title=f"Training step, batch {rows[0]['batch']}, "
                                            f"{rows[0]['patch']}x{rows[0]['patch']}")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    save(fig, "train_modes.png")

  flops = results.get("flops", {})
  if flops.get("rows"):
    fig, ax = plt.subplots(figsize=(5, 4))
    names = [f"x{r['scale']}" for r in flops["rows"]]
    bottom = [0.0] * len(names)
    for module in ("Gd", "F", "Gu"):
      vals = [r["module_gflops"][module] for r in flops["rows"]]
      ax.bar(names, vals, bottom=bottom, label=module)
      bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    side = flops["rows"][0]["hr_side"]
    ax.set(ylabel=f"GFLOP per {side}x{side} image (one pass each)", title="FLOPs by module")
    ax.legend()
    save(fig, "flops.png")

  prof = results.get("profile", {}).get("rows", [])
  if prof:
    fig, axes = plt.subplots(len(prof), 2, figsize=(11, 3.2 * len(prof)), squeeze=False)
    for row_axes, r in zip(axes, prof, strict=True):
      for ax, what in zip(row_axes, ("train_step", "upscale"), strict=True):
        ops = r[what]["by_type"][:8][::-1]
        ax.barh([o["op"] for o in ops], [100 * o["share"] for o in ops])
        ax.set(xlabel="% of op time", title=f"x{r['scale']} {what.replace('_', ' ')}")
        ax.tick_params(axis="y", labelsize=8)
    save(fig, "profile.png")

  tt = (results.get("train_throughput") or {}).get("json") or {}
  tt_rows = [r for r in (tt.get("rows", []) if isinstance(tt, dict) else [])
             if isinstance(r, dict) and {"scale", "patch", "constant"} <= set(r)]
  if tt_rows:
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"x{r['scale']} {r['patch']}" for r in tt_rows]
    xs = range(len(tt_rows))
    for i, (key, label) in enumerate((("real", "pipeline"), ("constant", "constant batch"))):
      ax.bar([x + 0.4 * (i - 0.5) for x in xs], [r.get(key) or 0 for r in tt_rows], width=0.4,
             label=label)
    ax.set_xticks(list(xs), labels)
    ax.set(ylabel="steps/s", title="Training throughput, batch "
                                   f"{tt_rows[0].get('batch')}, by scale and patch")
    ax.legend(fontsize=8)
    save(fig, "train_throughput.png")

  mem = parse_memory_table((results.get("memory_vs_size") or {}).get("output", ""))
  if mem:
    fig, ax = plt.subplots(figsize=(6, 4))
    for tile in sorted({m[1] for m in mem}):
      pts = sorted((mp, mib) for mp, t, mib in mem if t == tile)
      ax.plot(*zip(*pts, strict=True), "-o", label=f"tile {tile}")
    ax.set(xscale="log", xlabel="megapixels", ylabel="peak RSS (MiB)",
           title="Round trip peak memory against image size")
    ax.legend()
    save(fig, "memory.png")
  return written


def parse_memory_table(text: str) -> list[tuple[float, str, float]]:
  """(megapixels, tile, peak MiB) rows from memory_vs_size.py's printed table."""
  rows = []
  for line in text.splitlines():
    m = re.match(r"^\s*([\d.]+)\s+\d+x\d+\s+(\S+)\s+(\d+)\s+[\d.]+\s+ok", line)
    if m:
      rows.append((float(m[1]), m[2], float(m[3])))
  return rows


# ---- the report -------------------------------------------------------------------------------


def write_report(results: dict, plots: list[str], out: pathlib.Path,
                 report: pathlib.Path) -> None:
  info, quick = results["machine"], results["quick"]
  rel = _relative(out, report.parent)
  lines = ["# FGRN-TF benchmarks", ""]
  if quick:
    lines += ["> **Quick mode**: tiny networks and images, to check that the benchmark code "
              "runs. The numbers mean nothing.", ""]
  nets = ("the smoke preset's tiny network at each scale" if quick else
          "untrained paper-sized networks (`fgrn_tf.config.x2().model`, `x4().model`)")
  lines += [
      f"Written by `python -m bench.run_all{' --quick' if quick else ''}` on {info['date']}; "
      f"{nets}. Speed does not depend on the weights.", "",
      "## Machine", "", *machine_table(results), "",
      "When each section was measured, on which machine (the table above), with the load "
      "averages (1, 5, 15 min) before and after it: a load above the core count means other "
      "processes shared the CPU and that section's figures are inflated.", "",
      *ran_table(results), ""]
  if not quick:
    lines += ["## Against the official IRN", "", *comparison_table(), ""]
  lines += [f"Results folder: `{rel}/` (`results.csv`, plots, raw JSON, logs). Plots: "
            + ", ".join(f"[{p}]({rel}/{p})" for p in plots) + ".", ""]

  lat = results.get("latency")
  if lat:
    lines += ["## Inference latency (Keras, uint8 in and out, batch 1)", "",
              "Median [min, max] seconds per image after one warm-up run; round trip = the "
              "downscale and the upscale of its result. Threads = intra- and inter-op threads, "
              "each setting in a fresh process. Kernels: TF's default (TF turns its oneDNN "
              "kernels on only on CPUs with AVX-512 and the like) or `TF_ENABLE_ONEDNN_OPTS=1`.",
              "", *latency_table(lat["rows"]), "",
              *_errors(lat)]
  tm = results.get("train_modes")
  if tm:
    lines += ["## Training step: graph mode, XLA, MirroredStrategy", "",
              "`FGRN.fit` on a constant batch (the step alone, no input pipeline); TF's default "
              "threads. `mirrored` = MirroredStrategy over 2 logical CPUs carved from the same 2 "
              "cores (what multi-GPU training runs, not a speed-up here); `oneDNN on` = "
              "`TF_ENABLE_ONEDNN_OPTS=1`.", "",
              *train_modes_table(tm["rows"]), "", *_errors(tm)]
  paper = results.get("train_paper")
  if paper:
    lines += ["## Training step at the paper's batch (36 x 192x192)", "",
              "As above (default mode, constant batch), one process per scale, 1 warm-up step; "
              "peak RSS = the process's resident peak, model and data included.", "",
              "| scale | batch x patch | s/step median [min, max] | steps/s | HR Mpix/s | "
              "peak RSS |", "|---|---|---|---|---|---|"]
    for r in paper["rows"]:
      head = f"| x{r['scale']} | {r['batch']} x {r['patch']}x{r['patch']} |"
      lines.append(f"{head} {_fmt_s(r)} | {r['steps_per_s']:.3f} | {r['hr_mpix_per_s']:.3f} | "
                   f"{r.get('peak_rss_mib', float('nan')) / 1024:.1f} GiB |" if "median" in r
                   else f"{head} fails: {r.get('error', '')} | | | |")
    lines += ["", *_errors(paper)]
  flops = results.get("flops")
  if flops:
    lines += ["## FLOPs and the machine's limit", ""]
    lines += flops_tables(flops) if "rows" in flops else [f"Failed: {flops['error']}"]
    lines.append("")
  prof = results.get("profile")
  if prof:
    lines += ["## Where the time goes", "",
              "TF profiler trace (`bench/profile_step.py`): op time by op type and by module. "
              "`_FusedConv2D` is a conv with its bias and activation fused by grappler.", ""]
    lines += profile_tables(prof) if "rows" in prof else [f"Failed: {prof['error']}", ""]
  for name, title in EXTERNAL:
    lines += external_section(name, title, results.get(name))
  if not quick and FINDINGS.exists():  # the maintained reading of these figures
    lines += ["", FINDINGS.read_text().strip(), ""]
  report.write_text("\n".join(lines).rstrip() + "\n")


def _errors(section: dict) -> list[str]:
  return [f"- error: {e}" for e in section["errors"]] + ([""] if section["errors"] else [])


def machine_table(results: dict) -> list[str]:
  """The machine of this report: CPU, the flags that matter, TF's oneDNN state, the peak.

  The float32 peak is the flops section's, measured in the same run as the figures it is
  compared with; a report whose flops section is missing says so rather than borrow a peak.
  """
  info = results["machine"]
  flags = info.get("cpu_flags")
  peak = (results.get("flops") or {}).get("peak")
  peak_text = f"{peak['gflops']:.1f} GFLOP/s" if peak else "not measured"
  lines = ["| CPU | flags | TF oneDNN | cores (usable) | float32 matmul peak | TensorFlow | "
           "Keras | Python |", "|---|---|---|---|---|---|---|---|",
           f"| {info['cpu']} | {' '.join(flags) if flags is not None else 'not recorded'} | "
           f"{common.describe_onednn(info)} | {info['logical_cores']} ({info['usable_cores']}) | "
           f"{peak_text} | "
           f"{info.get('tensorflow', '?')} | {info.get('keras', '?')} | {info['python']} |"]
  if info.get("note"):
    lines += ["", info["note"]]
  return lines


def ran_table(results: dict) -> list[str]:
  """When each section was measured and how busy the machine was (sections can be reused)."""
  ran = results.get("ran", {})
  names = [n for n in SECTIONS if n in results]
  if not names:
    return []
  lines = ["| section | measured | load before | after |", "|---|---|---|---|"]
  for n in names:
    r = ran.get(n)
    lines.append(f"| {n} | {r['date']} | {_load(r.get('load_before'))} | "
                 f"{_load(r.get('load_after'))} |" if r else f"| {n} | an earlier run | ? | ? |")
  return lines


def _load(load) -> str:
  return " / ".join(f"{v:.2f}" for v in load) if load else "?"


def _relative(path: pathlib.Path, start: pathlib.Path) -> str:
  try:
    return str(path.resolve().relative_to(start.resolve()))
  except ValueError:
    return str(path.resolve())


# ---- main -------------------------------------------------------------------------------------


def render(results: dict, out: pathlib.Path, report: pathlib.Path) -> list[str]:
  """results.csv, the plots and the report from `results`; the plots' file names."""
  write_csv(csv_rows(results), out / "results.csv")
  plots = plot_all(results, out)
  write_report(results, plots, out, report)
  return plots


def run(plan: Plan, out: pathlib.Path, report: pathlib.Path, sections,
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
  common.write_json(out / "results.json", results)
  plots = render(results, out, report)
  common.progress("run_all", f"wrote {report}, {out / 'results.csv'} and {len(plots)} plots "
                             f"in {results['minutes']:.1f} min")
  return results


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
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
  report = args.report or (args.results_dir / "BENCHMARKS.md" if args.quick
                           else common.ROOT / "BENCHMARKS.md")
  if args.render_only:
    try:
      results = json.loads((args.results_dir / "results.json").read_text())
    except (OSError, ValueError) as e:
      print(f"error: --render_only needs {args.results_dir / 'results.json'}: {e}",
            file=sys.stderr)
      return 2
    render(results, args.results_dir, report)
    return 0
  try:
    reused = load_sections(args.results_dir / "results.json", reuse, args.quick)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  run(Plan.make(args.quick, args.external_timeout), args.results_dir, report,
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
