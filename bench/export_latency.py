"""Exported FGRN artifacts: size on disk, agreement with Keras on Set5, latency at 1 and 2 threads.

For each scale, exports a model with every format (`fgrn_tf.export`; the manifest gives the
sizes and the round-trip PSNR of each artifact against Keras on whole Set5 images, from
--check_dir or $FGRN_DATA_ROOT, else on the built-in photos; full-integer int8 is kept whatever
its quality, to be measured), then times the downscale of an N x N HR image and the upscale of
its N/s x N/s LR with Keras, the SavedModel and each .tflite pair, in one fresh process per
thread count (TensorFlow fixes its thread pools when it starts; the LiteRT interpreter gets
`num_threads`). The model is the bundled one (fgrn_x<s>) when there is one, else the
paper-sized network with untrained weights: latency does not depend on the weights, agreement
does.

  python -m bench.export_latency                          # x2 and x4; 256, 512 and 1024
  python -m bench.export_latency --scales 2 --workdir RUN # a trained run instead
  python -m bench.export_latency --quick                  # tiny network, 64x64, a smoke run
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile

from bench import common
from fgrn_tf import files

QUICK_HR_SIDE = 64


def _model(args, scale: int):
  """(FGRN, description): a trained workdir's model, or the paper-sized one untrained."""
  import numpy as np

  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.runtime.shipped import default_model_path
  from fgrn_tf.workdir import load_model

  shipped = default_model_path(scale)
  workdir = args.workdir or (shipped if shipped.is_dir() and not args.quick else None)
  if workdir:
    return load_model(workdir), f"trained x{scale} ({_relative(workdir)})"
  model = FGRN(common.bench_model_config(scale, args.quick))
  # The flow's last convs start at zero (F = identity); give them values so F does real work.
  rng = np.random.default_rng(0)
  for v in model.flow.weights if model.flow is not None else []:
    if v.numpy().ndim == 4 and not v.numpy().any():
      v.assign(rng.normal(0, 0.02, v.shape).astype(np.float32))
  kind = "smoke-sized" if args.quick else "paper-sized"
  return model, f"{kind} x{scale}, untrained weights (random init, flow randomised)"


def _relative(path) -> str:
  path = pathlib.Path(path).resolve()
  return str(path.relative_to(common.ROOT)) if path.is_relative_to(common.ROOT) else str(path)


def _check_files(check_dir: str | None) -> list[str]:
  """The agreement check's images: `check_dir`, else Set5 under `$FGRN_DATA_ROOT`, else the
  built-in photos, so that the script runs without a data folder (the recorded runs used Set5:
  other images give other agreement figures, the report names the ones used)."""
  from fgrn_tf.data import defaults
  from fgrn_tf.data.images import list_images
  from fgrn_tf.evaluate.inputs import default_data_root

  root = default_data_root()
  if not check_dir and root is not None and (root / "Set5").is_dir():
    check_dir = str(root / "Set5")
  return list_images(check_dir) if check_dir else defaults.default_image_files()


def export_all(args, scale: int, out: pathlib.Path) -> dict:
  """Exports every format to `out/export` and saves the weights as a workdir `out/workdir`."""
  from fgrn_tf import config, workdir
  from fgrn_tf.export import exporter, inputs

  model, description = _model(args, scale)
  wd = out / "workdir"
  workdir.write_experiment(wd, config.Experiment(model.model_config, config.TrainConfig()))
  model.save_weights(wd / workdir.BEST_WEIGHTS)
  crop = QUICK_HR_SIDE if args.quick else 0
  check = inputs.load_check_images(_check_files(args.check_dir), model.scale, crop=crop)
  manifest = exporter.export(model, out / "export", check, overwrite=True,
                               max_int8_full_drop=float("inf"),
                               log=lambda m: common.progress("export", m))
  manifest["model_description"] = description
  return manifest


def worker(args) -> None:
  """Times every artifact in `args.export_dir` with `args.threads` threads; prints JSON rows."""
  args.threads = int(args.threads)
  common.configure_tf(threads=args.threads)
  import numpy as np

  from fgrn_tf.runtime import backends

  export_dir = pathlib.Path(args.export_dir)
  manifest = json.loads((export_dir / backends.MANIFEST).read_text())
  sides = [QUICK_HR_SIDE] if args.quick else [int(v) for v in args.sizes.split(",")]
  s = manifest["scale"]
  rng = np.random.default_rng(0)
  kinds = {"keras": lambda: backends.load_backend(export_dir.parent / "workdir")}
  for name, entry in manifest["artifacts"].items():
    if "skipped" not in entry:
      kinds[name] = (lambda n=name: backends.load_backend(export_dir, artifact=n,
                                                          num_threads=args.threads))
  rows = []
  for name, make in kinds.items():
    backend = make()
    for side in sides:
      hr = rng.integers(0, 256, (1, side, side, 3), dtype=np.uint8)
      lr = rng.integers(0, 256, (1, side // s, side // s, 3), dtype=np.uint8)
      runs = args.runs if side < 1024 else max(1, args.runs - 1)  # ~15 s a call at 1024
      for op, fn, x in (("downscale", backend.downscale, hr), ("upscale", backend.upscale, lr)):
        times = common.time_calls(lambda f=fn, x=x: f(x), runs=runs, warmup=1)
        rows.append({"artifact": name, "op": op, "threads": args.threads, "scale": s,
                     "hr_side": side, "input": list(x.shape[1:3]), **common.summarize(times)})
        common.progress(f"x{s} {args.threads} thread(s)",
                        f"{name:17s} {op:9s} {side}: {rows[-1]['median']:.3f} s")
    del backend
  print("ROWS " + json.dumps(rows), flush=True)


def main(argv=None) -> int:
  parser = common.script_parser(__doc__)
  parser.add_argument("--quick", action="store_true", help="tiny network and 64x64 images")
  parser.add_argument("--scales", default="2,4")
  parser.add_argument("--sizes", default="256,512,1024", help="HR sides to time")
  parser.add_argument("--workdir", help="a trained workdir, with one --scales (default: the "
                                        "shipped model, else untrained weights)")
  parser.add_argument("--check_dir", help="images for the agreement check (default: Set5 under "
                                          "$FGRN_DATA_ROOT, else the built-in photos)")
  parser.add_argument("--threads", default="1,2", help="thread counts to time")
  parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement")
  parser.add_argument("--out",
                      default=str(common.ROOT / "results" / "bench" / "export_latency.json"))
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--export_dir", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  common.announce("export_latency")
  if args.worker:
    worker(args)
    return 0

  scales = [int(v) for v in args.scales.split(",")]
  if args.workdir and len(scales) != 1:
    parser.error("--workdir is one model: give its scale alone in --scales")
  if args.quick:
    scales = scales[:1]
  common.configure_tf()
  info = common.machine_info()
  common.progress("export_latency", f"load average before: {info['loadavg']}")
  models, rows = {}, []
  for scale in scales:
    with tempfile.TemporaryDirectory(prefix="export_latency.") as tmp:
      tmp = pathlib.Path(tmp)
      manifest = export_all(args, scale, tmp)
      models[scale] = {k: manifest[k] for k in ("model_description", "check_set", "artifacts")}
      for threads in [int(t) for t in args.threads.split(",")]:
        worker_args = ["--worker", "--export_dir", str(tmp / "export"), "--threads",
                       str(threads), "--runs", str(args.runs), "--sizes", args.sizes]
        worker_args += ["--quick"] if args.quick else []
        code, text = common.run_script(pathlib.Path(__file__), worker_args, timeout=3600,
                                       tag=f"x{scale} {threads}t")
        if code != 0:
          print(f"worker x{scale} with {threads} thread(s) failed (exit {code})", file=sys.stderr)
          return 1
        rows += json.loads(next(line for line in text.splitlines()
                                if line.startswith("ROWS "))[5:])
  info["loadavg_after"] = common.load_average()
  result = {"machine": info, "models": models, "latency": rows}
  files.write_json(args.out, result)
  print(report(result))
  print(f"\nwrote {args.out}")
  return 0


def _in_export_order(artifacts: dict) -> list[tuple[str, dict]]:
  """`artifacts` in the exporter's order of formats, which JSON written with sorted keys loses."""
  from fgrn_tf.export.exporter import FORMATS

  rank = {name: i for i, name in enumerate(FORMATS)}
  return sorted(artifacts.items(), key=lambda item: rank.get(item[0], len(rank)))


def report(result: dict) -> str:
  """Markdown tables: per scale, sizes and agreement; then latency with round trips."""
  lines = [f"Load average before/after: {result['machine']['loadavg']} / "
           f"{result['machine']['loadavg_after']} (2 cores).", ""]
  for scale, m in result["models"].items():
    check = m["check_set"]
    lines += [f"x{scale}: {m['model_description']}; agreement on {len(check['images'])} whole "
              f"images ({', '.join(check['images'])}).", "",
              "| artifact | size | max diff down/up (levels) | round trip PSNR-Y | drop vs Keras |",
              "|---|---|---|---|---|"]
    for name, a in _in_export_order(m["artifacts"]):
      g = a["agreement"]
      skipped = " (not shipped)" if "skipped" in a else ""
      lines.append(f"| {name}{skipped} | {a['bytes'] / 1e6:.2f} MB | "
                   f"{g['downscale_max_abs_diff']}/{g['upscale_max_abs_diff']} | "
                   f"{g['roundtrip_psnr_y']:.2f} dB | {g['psnr_drop_db']:+.2f} dB |")
    lines.append("")
  lines += ["Seconds per image (batch 1, uint8): median [min, max] of the timed runs after a "
            "warm-up (3 runs, 2 at 1024); round trip = the two medians added.", "",
            "| scale | HR size | artifact | threads | downscale | upscale | round trip |",
            "|---|---|---|---|---|---|---|"]
  table: dict[tuple, dict] = {}
  for r in result["latency"]:
    key = (r["scale"], r["hr_side"], r["artifact"], r["threads"])
    table.setdefault(key, {})[r["op"]] = r
  for (scale, side, name, threads), by in sorted(table.items()):
    down, up = by.get("downscale"), by.get("upscale")
    cells = [f"{r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}]" if r else "-"
             for r in (down, up)]
    trip = f"{down['median'] + up['median']:.3f}" if down and up else "-"
    lines.append(f"| x{scale} | {side}x{side} | {name} | {threads} | {cells[0]} | {cells[1]} | "
                 f"{trip} |")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
