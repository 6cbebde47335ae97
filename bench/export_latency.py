"""Exported FGRN artifacts: size on disk, agreement with Keras on Set5, latency at 1 and 2 threads.

Exports a model with every format (`export/export_lib.py`; the manifest gives the sizes and the
round-trip PSNR of each artifact against Keras on whole Set5 images; full-integer int8 is kept
whatever its quality, to be measured), then times the downscale of a 512x512 HR image and the
upscale of a 512/s x 512/s LR image with Keras, the SavedModel and each .tflite pair, in one
fresh process per thread count (TensorFlow fixes its thread pools when it starts; the LiteRT
interpreter gets `num_threads`).

  python bench/export_latency.py                 # paper-sized x2 network, untrained weights
  python bench/export_latency.py --workdir RUN   # a trained model instead
  python bench/export_latency.py --quick         # tiny network, 64x64, a smoke run
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

HR_SIDE = 512
QUICK_HR_SIDE = 64
SET5 = common.ROOT.parent / "shared" / "datasets" / "Set5"


def _model(args):
  """(FGRN, description): a trained workdir's model, or the paper-sized one untrained."""
  import numpy as np

  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.workdir import load_model

  if args.workdir:
    return load_model(args.workdir), f"trained ({args.workdir})"
  model = FGRN(common.bench_model_config(args.scale, args.quick))
  # The flow's last convs start at zero (F = identity); give them values so F does real work.
  rng = np.random.default_rng(0)
  for v in model.flow.weights if model.flow is not None else []:
    if v.numpy().ndim == 4 and not v.numpy().any():
      v.assign(rng.normal(0, 0.02, v.shape).astype(np.float32))
  kind = "smoke-sized" if args.quick else "paper-sized"
  return model, f"{kind} x{args.scale}, untrained weights (random init, flow randomised)"


def export_all(args, out: pathlib.Path) -> dict:
  """Exports every format to `out/export` and saves the weights as a workdir `out/workdir`."""
  from export import export_lib
  from fgrn_tf import config, workdir
  from fgrn_tf.data.images import list_images

  model, description = _model(args)
  wd = out / "workdir"
  workdir.write_experiment(wd, config.Experiment(model.model_config, config.TrainConfig()))
  model.save_weights(wd / workdir.BEST_WEIGHTS)
  check_dir = pathlib.Path(args.check_dir)
  crop = QUICK_HR_SIDE if args.quick else 0
  check = export_lib.load_check_images(list_images(check_dir), model.scale, crop=crop)
  manifest = export_lib.export(model, out / "export", check, overwrite=True,
                               max_int8_full_drop=float("inf"),
                               log=lambda m: common.progress("export", m))
  manifest["model_description"] = description
  return manifest


def worker(args) -> None:
  """Times every artifact in `args.export_dir` with `args.threads` threads; prints JSON rows."""
  args.threads = int(args.threads)
  common.configure_tf(threads=args.threads)
  import numpy as np

  from fgrn_tf import backends

  export_dir = pathlib.Path(args.export_dir)
  manifest = json.loads((export_dir / backends.MANIFEST).read_text())
  side = QUICK_HR_SIDE if args.quick else HR_SIDE
  s = manifest["scale"]
  rng = np.random.default_rng(0)
  hr = rng.integers(0, 256, (1, side, side, 3), dtype=np.uint8)
  lr = rng.integers(0, 256, (1, side // s, side // s, 3), dtype=np.uint8)
  kinds = {"keras": lambda: backends.load_backend(export_dir.parent / "workdir")}
  for name, entry in manifest["artifacts"].items():
    if "skipped" not in entry:
      kinds[name] = (lambda n=name: backends.load_backend(export_dir, artifact=n,
                                                          num_threads=args.threads))
  rows = []
  for name, make in kinds.items():
    backend = make()
    for op, fn, x in (("downscale", backend.downscale, hr), ("upscale", backend.upscale, lr)):
      times = common.time_calls(lambda f=fn, x=x: f(x), runs=args.runs, warmup=1)
      rows.append({"artifact": name, "op": op, "threads": args.threads,
                   "input": list(x.shape[1:3]), **common.summarize(times)})
      common.progress(f"{args.threads} thread(s)", f"{name:17s} {op:9s} "
                                                  f"{rows[-1]['median']:.3f} s")
    del backend
  print("ROWS " + json.dumps(rows), flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="tiny network and 64x64 images")
  parser.add_argument("--scale", type=int, default=2)
  parser.add_argument("--workdir", help="a trained model's workdir (default: untrained)")
  parser.add_argument("--check_dir", default=str(SET5), help="images for the agreement check")
  parser.add_argument("--threads", default="1,2", help="thread counts to time")
  parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement")
  parser.add_argument("--out", default=str(common.BENCH_DIR / "results" / "export_latency.json"))
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--export_dir", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    worker(args)
    return 0

  common.configure_tf()
  info = common.machine_info()
  common.progress("export_latency", f"load average before: {info['loadavg']}")
  with tempfile.TemporaryDirectory(prefix="export_latency.") as tmp:
    tmp = pathlib.Path(tmp)
    manifest = export_all(args, tmp)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
      worker_args = ["--worker", "--export_dir", str(tmp / "export"), "--threads", str(threads),
                     "--runs", str(args.runs)] + (["--quick"] if args.quick else [])
      code, text = common.run_script(pathlib.Path(__file__), worker_args, timeout=1800,
                                     tag=f"{threads}t")
      if code != 0:
        print(f"worker with {threads} thread(s) failed (exit {code})", file=sys.stderr)
        return 1
      rows += json.loads(next(line for line in text.splitlines()
                              if line.startswith("ROWS "))[5:])
  info["loadavg_after"] = common.load_average()
  result = {"machine": info, "model": manifest["model_description"],
            "check_set": manifest["check_set"], "artifacts": manifest["artifacts"],
            "latency": rows}
  common.write_json(args.out, result)
  print(report(result))
  print(f"\nwrote {args.out}")
  return 0


def report(result: dict) -> str:
  """Markdown tables: sizes and agreement, then latency."""
  lines = [f"Model: {result['model']}. Load average before/after: "
           f"{result['machine']['loadavg']} / {result['machine']['loadavg_after']} "
           f"(2 cores, shared).", "",
           "| artifact | size | max diff down/up (levels) | round trip PSNR-Y | drop vs Keras |",
           "|---|---|---|---|---|"]
  for name, a in result["artifacts"].items():
    g = a["agreement"]
    skipped = " (not shipped)" if "skipped" in a else ""
    lines.append(f"| {name}{skipped} | {a['bytes'] / 1e6:.2f} MB | {g['downscale_max_abs_diff']}"
                 f"/{g['upscale_max_abs_diff']} | {g['roundtrip_psnr_y']:.2f} dB | "
                 f"{g['psnr_drop_db']:+.2f} dB |")
  lines += ["", "| artifact | op | input | 1 thread (s) | 2 threads (s) |", "|---|---|---|---|---|"]
  table: dict[tuple, dict] = {}
  for r in result["latency"]:
    table.setdefault((r["artifact"], r["op"], tuple(r["input"])), {})[r["threads"]] = r["median"]
  for (name, op, size), by in table.items():
    cells = [f"{by[t]:.3f}" if t in by else "-" for t in (1, 2)]
    lines.append(f"| {name} | {op} | {size[0]}x{size[1]} | {cells[0]} | {cells[1]} |")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
