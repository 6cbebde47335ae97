"""The benchmark's PNG plots: latency, training modes, FLOPs, profiles, throughput, memory."""

from __future__ import annotations

import pathlib
import re

from bench import report


def plot_all(results: dict, out: pathlib.Path) -> list[str]:
  """Writes the PNG plots that have data into `out`; returns their file names."""
  import matplotlib

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  written = []
  for name, draw in PLOTS:
    fig = draw(plt, results)
    if fig is None:  # no data for it in these results
      continue
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    written.append(name)
  return written


def latency_plot(plt, results: dict):
  """Seconds per image against HR side, a panel per scale; None without latency rows."""
  from matplotlib import ticker

  rows = results.get("latency", {}).get("rows", [])
  if not rows:
    return None
  scales = sorted({r["scale"] for r in rows})
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
      ax.plot(*zip(*extra, strict=True), "kx", ms=9,
              label=f"round trip, {report.ONEDNN_VARIANT}")
    ax.set(xscale="log", yscale="log", xlabel="HR side (pixels)", ylabel="seconds per image",
           title=f"FGRN x{scale} (Keras) latency")
    sides = sorted({r["size"] for r in rows})
    ax.set_xticks(sides, [str(s) for s in sides])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.legend(fontsize=7)
  return fig


def train_modes_plot(plt, results: dict):
  rows = [r for r in results.get("train_modes", {}).get("rows", []) if "steps_per_s" in r]
  if not rows:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  labels = [f"x{r['scale']} {report.mode_label(r)}" for r in rows]
  ax.bar(labels, [r["steps_per_s"] for r in rows],
         yerr=[[r["steps_per_s"] - 1 / r["max"] for r in rows],
               [1 / r["min"] - r["steps_per_s"] for r in rows]], capsize=3)
  ax.set(ylabel="training steps/s", title=f"Training step, batch {rows[0]['batch']}, "
                                          f"{rows[0]['patch']}x{rows[0]['patch']}")
  ax.tick_params(axis="x", labelrotation=30, labelsize=8)
  return fig


def flops_plot(plt, results: dict):
  flops = results.get("flops", {})
  if not flops.get("rows"):
    return None
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
  return fig


def profile_plot(plt, results: dict):
  prof = results.get("profile", {}).get("rows", [])
  if not prof:
    return None
  fig, axes = plt.subplots(len(prof), 2, figsize=(11, 3.2 * len(prof)), squeeze=False)
  for row_axes, r in zip(axes, prof, strict=True):
    for ax, what in zip(row_axes, ("train_step", "upscale"), strict=True):
      ops = r[what]["by_type"][:8][::-1]
      ax.barh([o["op"] for o in ops], [100 * o["share"] for o in ops])
      ax.set(xlabel="% of op time", title=f"x{r['scale']} {what.replace('_', ' ')}")
      ax.tick_params(axis="y", labelsize=8)
  return fig


def train_throughput_plot(plt, results: dict):
  tt = (results.get("train_throughput") or {}).get("json") or {}
  rows = [r for r in (tt.get("rows", []) if isinstance(tt, dict) else [])
          if isinstance(r, dict) and {"scale", "patch", "constant"} <= set(r)]
  if not rows:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  labels = [f"x{r['scale']} {r['patch']}" for r in rows]
  xs = range(len(rows))
  for i, (key, label) in enumerate((("real", "pipeline"), ("constant", "constant batch"))):
    ax.bar([x + 0.4 * (i - 0.5) for x in xs], [r.get(key) or 0 for r in rows], width=0.4,
           label=label)
  ax.set_xticks(list(xs), labels)
  ax.set(ylabel="steps/s", title="Training throughput, batch "
                                 f"{rows[0].get('batch')}, by scale and patch")
  ax.legend(fontsize=8)
  return fig


def memory_plot(plt, results: dict):
  mem = parse_memory_table((results.get("memory_vs_size") or {}).get("output", ""))
  if not mem:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  for tile in sorted({m[1] for m in mem}):
    pts = sorted((mp, mib) for mp, t, mib in mem if t == tile)
    ax.plot(*zip(*pts, strict=True), "-o", label=f"tile {tile}")
  ax.set(xscale="log", xlabel="megapixels", ylabel="peak RSS (MiB)",
         title="Round trip peak memory against image size")
  ax.legend()
  return fig


# (file name, drawing function) in the order the report links them.
PLOTS = (("latency.png", latency_plot), ("train_modes.png", train_modes_plot),
         ("flops.png", flops_plot), ("profile.png", profile_plot),
         ("train_throughput.png", train_throughput_plot), ("memory.png", memory_plot))


def parse_memory_table(text: str) -> list[tuple[float, str, float]]:
  """(megapixels, tile, peak MiB) rows from memory_vs_size.py's printed table."""
  rows = []
  for line in text.splitlines():
    m = re.match(r"^\s*([\d.]+)\s+\d+x\d+\s+(\S+)\s+(\d+)\s+[\d.]+\s+ok", line)
    if m:
      rows.append((float(m[1]), m[2], float(m[3])))
  return rows
