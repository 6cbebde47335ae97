"""Upscaling where apps run it: each model's upscaler .tflite at phone-sized LR inputs.

For every model given (a bundled model's name such as fgrn_x2, its folder, an export folder, or a
training workdir, which is exported to a temporary folder first), times the upscaler of each
TFLite artifact with the LiteRT interpreter (its default XNNPACK CPU delegate) at 1 and 2
threads, on LR inputs of 640x360, 960x540 and 1920x1080 (HR 1280x720 .. 3840x2160 at x2), and
prints the milliseconds (median of `--runs` after one untimed call that sizes the tensors)
beside the model's upscale FLOPs per output megapixel. All models are timed in one process,
one after another, so that a speed-up between them compares figures of one machine and run.

A paper-sized upscale of a 1920x1080 LR takes a minute or more here: once a call takes longer
than `--max_seconds`, that size is timed once (the sizing call, marked) and the larger sizes
are left out.

  .venv/bin/python -m bench.mobile_latency                   # every bundled model
  .venv/bin/python -m bench.mobile_latency --models mobile_x2,fgrn_x2
  .venv/bin/python -m bench.mobile_latency --eval_dir DATA/Set5 --plot docs/benchmarks/mobile.png
  .venv/bin/python -m bench.mobile_latency --quick           # tiny sizes: checks the code

With `--eval_dir`, each model's TFLite pair is also scored there (the round trip's Y PSNR,
`fgrn-eval`'s protocol), and `--plot` draws PSNR against the milliseconds of the 960x540
upscale at 2 threads, one panel per scale.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from bench import common
from fgrn_tf import files

LR_SIZES = ((640, 360), (960, 540), (1920, 1080))  # width x height, as video sizes are named
QUICK_SIZES = ((64, 36),)


def _tflite_pairs(folder: pathlib.Path) -> dict[str, pathlib.Path]:
  """{artifact name: upscaler.tflite} under an export folder (`export/` of a shipped one)."""
  root = folder / "export" if (folder / "export").is_dir() else folder
  return {p.parent.name: p for p in sorted((root / "tflite").glob("*/upscaler.tflite"))}


def _export(workdir: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  from fgrn_tf.export import exporter

  exporter.export_path(workdir, out, ("savedmodel", "tflite_float32", "tflite_float16"),
                         log=lambda m: None)
  return out


def flops_per_output_mp(model) -> float:
  """Upscale FLOPs (F^-1 and Gu) per output megapixel."""
  from bench.flops import module_flops

  side = 64 * model.scale
  f = module_flops(model, side)
  return (f["F"] + f["Gu"]) / (side * side / 1e6)


def measure(folders, threads, sizes, runs: int, max_seconds: float, tmp: pathlib.Path,
            eval_dir: str = "") -> list:
  import numpy as np

  from fgrn_tf import workdir
  from fgrn_tf.runtime import backends

  rows = []
  rng = np.random.default_rng(0)
  for folder in folders:
    folder = pathlib.Path(folder)
    model = workdir.load_model(folder)
    pairs = _tflite_pairs(folder)
    if not pairs:
      pairs = _tflite_pairs(_export(folder, tmp / folder.name))
    flops = flops_per_output_mp(model)
    s = model.scale
    for artifact, path in pairs.items():
      psnr = (common.round_trip_psnr(str(path.parent), s, eval_dir,
                                     tmp / f"eval_{folder.name}_{artifact}")
              if eval_dir else None)
      for n in threads:
        backend = backends.TFLiteBackend.from_files([path], num_threads=n)
        for w, h in sizes:
          out_mp = w * h * s * s / 1e6
          row = {"model": folder.name, "params": model.count_params(), "artifact": artifact,
                 "threads": n, "lr": f"{w}x{h}", "hr": f"{w * s}x{h * s}",
                 "gflop_per_output_mp": flops / 1e9, "psnr": psnr}
          lr = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
          first = common.time_calls(lambda lr=lr, b=backend: b.upscale(lr), runs=1, warmup=0)[0]
          # The sizing call (tensor allocation included) bounds what a timed one costs.
          if first * runs > max_seconds:
            times = [first]
            row["note"] = "one call, allocation included"
          else:
            times = common.time_calls(lambda lr=lr, b=backend: b.upscale(lr), runs=runs, warmup=0)
          rows.append({**row, "ms": 1000 * min(times) if row.get("note") else
                       1000 * common.summarize(times)["median"], "output_mp": out_mp})
          common.progress("mobile_latency", f"{folder.name} {artifact} {n} thread(s) "
                                            f"{w}x{h}: {rows[-1]['ms']:.0f} ms")
          if first > max_seconds:
            break  # the next, larger size would take longer still
  return rows


def _sizes(text: str) -> tuple:
  return tuple(tuple(int(v) for v in size.split("x")) for size in text.split(",") if size)


def report(info: dict, rows: list) -> str:
  lines = [common.machine_line(info, info.get("peak_gflops")), "",
           "| model | params | artifact | round trip PSNR | threads | LR -> HR | ms | "
           "GFLOP / output MP |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    note = f" ({r['note']})" if r.get("note") else ""
    psnr = "" if r.get("psnr") is None else f"{r['psnr']:.2f}"
    lines.append(f"| {r['model']} | {r['params']:,} | {r['artifact']} | {psnr} | "
                 f"{r['threads']} | {r['lr']} -> {r['hr']} | {r['ms']:.0f}{note} | "
                 f"{r['gflop_per_output_mp']:.1f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = common.script_parser(__doc__)
  parser.add_argument("--models", default="",
                      help="comma-separated model folders or bundled models' names "
                           "(default: every bundled model)")
  parser.add_argument("--threads", default="1,2")
  parser.add_argument("--runs", type=int, default=3)
  parser.add_argument("--max_seconds", type=float, default=60.0,
                      help="skip the larger sizes of a model once one call takes this long")
  parser.add_argument("--quick", action="store_true", help="a tiny input size")
  parser.add_argument("--sizes", default="", help="LR sizes WxH,... (default 640x360,960x540,"
                                                  "1920x1080)")
  parser.add_argument("--eval_dir", default="", help="score each TFLite pair on these images")
  parser.add_argument("--plot", type=pathlib.Path, help="PSNR against ms, written here (PNG)")
  parser.add_argument("--json_out", type=pathlib.Path)
  args = parser.parse_args(argv)
  from fgrn_tf.runtime import resolve, shipped

  folders = ([resolve.model_spec(m) for m in args.models.split(",") if m] or
             [shipped.model_dir(name) for name in shipped.names()])
  info = common.announce("mobile_latency") or common.machine_info()
  common.configure_tf()
  with tempfile.TemporaryDirectory(prefix="mobile_latency.") as tmp:
    rows = measure(folders, [int(t) for t in args.threads.split(",")],
                   QUICK_SIZES if args.quick else _sizes(args.sizes) or LR_SIZES, args.runs,
                   args.max_seconds,
                   pathlib.Path(tmp), args.eval_dir)
  text = report(info, rows)
  print(text)
  if args.json_out:
    files.write_json(args.json_out, {"machine": info, "rows": rows, "markdown": text})
  if args.plot:
    plot(rows, args.plot, "64x36" if args.quick else "960x540")
  return 0


def plot(rows: list, path: pathlib.Path, lr: str, threads: int = 2) -> None:
  """Round-trip PSNR against upscale milliseconds (log scale), one panel per scale."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  chosen = [r for r in rows if r["lr"] == lr and r["threads"] == threads and r.get("psnr")]
  scales = sorted({int(r["hr"].split("x")[0]) // int(r["lr"].split("x")[0]) for r in chosen})
  fig, axes = plt.subplots(1, max(1, len(scales)), figsize=(5.5 * max(1, len(scales)), 4),
                           squeeze=False)
  for ax, s in zip(axes[0], scales, strict=False):
    for r in chosen:
      if int(r["hr"].split("x")[0]) // int(r["lr"].split("x")[0]) != s:
        continue
      ax.scatter(r["ms"], r["psnr"])
      ax.annotate(f"{r['model']} {r['artifact']}", (r["ms"], r["psnr"]), fontsize=8,
                  xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"ms to upscale a {lr} LR (TFLite, {threads} threads)")
    ax.set_ylabel("round trip Y PSNR (dB)")
    ax.set_title(f"x{s}")
    ax.grid(True, alpha=0.3)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)


if __name__ == "__main__":
  sys.exit(main())
