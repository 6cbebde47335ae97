"""The benchmark report: BENCHMARKS.md's sections and tables, and results.csv, from the results."""

from __future__ import annotations

import csv
import importlib
import io
import pathlib
import re

from bench import common
from bench import flops as bench_flops
from fgrn_tf import files

# The other bench scripts, run by run_all as they are: (name, title).
EXTERNAL = (
    ("train_throughput", "Training throughput with the input pipeline"),
    ("export_latency", "SavedModel and TFLite: size, agreement, latency"),
    ("memory_vs_size", "Peak memory of a round trip against image size"),
    ("rate_distortion", "Rate-distortion: the LR through JPEG and WebP"),
    ("serving", "TF Serving: the bytes signatures against the uint8 ones"),
)
OWN = ("latency", "train_modes", "train_paper", "flops", "profile")
SECTIONS = OWN + tuple(name for name, _ in EXTERNAL)
# What the figures mean and what was done about them: written by hand, appended to the report.
FINDINGS = common.BENCH_DIR / "FINDINGS.md"
# How a row measured with TF_ENABLE_ONEDNN_OPTS=1 is marked (the only variant run).
ONEDNN_VARIANT = "oneDNN on"


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
    # In the flops module's order, not the JSON's (results.json is written with sorted keys).
    for module in bench_flops.MODULES:
      add("flops", r["scale"], f"{module} per {r['hr_side']}x{r['hr_side']}", "", "gflops",
          r["module_gflops"][module], unit="GFLOP")
    for op in bench_flops.OPS:
      add("flops", r["scale"], op, "", "gflops", r["op_gflops"][op], unit="GFLOP")
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
  """`rows` (of `csv_rows`) as a CSV file at `path`, written atomically."""
  text = io.StringIO(newline="")
  writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["section"])
  writer.writeheader()
  writer.writerows(rows)
  files.write_text(path, text.getvalue())


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


def mode_label(r) -> str:
  """A training mode as the report names it, with its kernels when not TF's default."""
  return f"{r['mode']} ({r['variant']})" if r.get("variant") else r["mode"]


def train_modes_table(rows) -> list[str]:
  lines = ["| scale | mode | batch x patch | steps/s | s/step median [min, max] | HR Mpix/s | "
           "first steps (trace, compile) |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    head = f"| x{r['scale']} | {mode_label(r)} | {r['batch']} x {r['patch']}x{r['patch']} |"
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


def write_report(results: dict, plots: list[str], out: pathlib.Path,
                 report: pathlib.Path) -> None:
  """Writes the markdown report of `results` to `report`.

  Args:
    results: what `run_all.run` measured (or results.json's copy of it).
    plots: the plots' file names in `out`, linked from the report.
    out: the results folder (CSV, plots, raw JSON, logs), linked relative to the report.
    report: the markdown file to write.
  """
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
  files.write_text(report, "\n".join(lines).rstrip() + "\n")


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
