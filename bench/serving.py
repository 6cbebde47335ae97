"""The SavedModel as TF Serving runs it: the bytes signatures against the uint8 tensor ones.

Exports an untrained preset network (speed and memory do not depend on the weights) as a
SavedModel, then runs each case in a fresh process that loads it with `tf.saved_model.load`,
as the server does, and reports its peak RSS (the process's own high-water mark, VmHWM):
- speed: the upscale of one request of 1 and 4 images whose HR is 0.25, 1 and 4 MP, through
  `upscale_bytes` (PNG in and out, tiled) and `upscale` (uint8 tensors, whole images):
  seconds per request and images/s, the gRPC request and response sizes (the PredictRequest and
  PredictResponse as serialized), the REST body of the bytes case (base64 JSON), and the share
  of the bytes signature's time that PNG decoding and encoding take (the same ops timed alone);
- memory: one upscale request of 1, 4, 16 and 64 MP HR through each, tiled and untiled; an
  untiled case predicted from the smaller ones to need more memory than the machine has is
  skipped.

  .venv/bin/python -m bench.serving                       # paper x2, tile 1024: ~1 h on 2 cores
  .venv/bin/python -m bench.serving --quick               # smoke model, tiny images: < 2 min
  .venv/bin/python -m bench.serving --skip_memory         # the speed table alone
  .venv/bin/python -m bench.serving --memory_sizes 64 --skip_speed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

from bench import common
from bench.memory_vs_size import available_mib, predicted_mib, synthetic_image

SIGNATURES = {"bytes": ("upscale_bytes", "lr_bytes", "hr_bytes"), "tensor": ("upscale", "lr", "hr")}


def _side(mp: float, scale: int) -> int:
  """An HR side of about `mp` megapixels (square), a multiple of the scale."""
  return max(scale, int(round(math.sqrt(mp * 1e6) / scale)) * scale)


def _export(preset: str, tile: int, folder: pathlib.Path) -> pathlib.Path:
  from fgrn_tf import tf_env

  tf_env.set_defaults()
  import numpy as np

  from fgrn_tf.config import preset as preset_of
  from fgrn_tf.export import saved_model
  from fgrn_tf.export.bytes_signatures import ServingOptions
  from fgrn_tf.models.fgrn import FGRN

  model = FGRN(preset_of(preset).model)
  rng = np.random.default_rng(0)  # the flow starts as the identity: give it work to do
  for v in model.flow.weights if model.flow is not None else []:
    if v.numpy().ndim == 4 and not v.numpy().any():
      v.assign(rng.normal(0, 0.02, v.shape).astype(np.float32))
  path = folder / "model" / "1"
  saved_model.write(model, path, serving=ServingOptions(tile=tile))
  return path


def _lr_file(folder: pathlib.Path, side: int, scale: int) -> pathlib.Path:
  """A PNG LR of an HR `side` x `side`, made once per size."""
  from fgrn_tf.data import images

  path = folder / f"lr_{side}.png"
  if not path.exists():
    images.write_image(path, synthetic_image(side // scale, seed=side))
  return path


# ---- one case, in its own process -------------------------------------------------------------


def worker(case: dict) -> dict:
  """Runs one case (see `main`) and returns its figures, peak RSS included."""
  from fgrn_tf import tf_env

  tf_env.set_defaults()
  import numpy as np
  import tensorflow as tf

  from fgrn_tf.data import images

  loaded = tf.saved_model.load(case["model"])
  name, key_in, key_out = SIGNATURES[case["kind"]]
  signature = loaded.signatures[name]
  data = pathlib.Path(case["lr"]).read_bytes()
  batch = case["batch"]
  if case["kind"] == "bytes":
    x = tf.constant([data] * batch)
  else:
    x = tf.constant(np.stack([images.read_rgb8(case["lr"])] * batch))
  out = {}
  if case.get("warmup"):  # the first call of a signature allocates its kernels' buffers
    small = _lr_file(pathlib.Path(case["lr"]).parent, 64, 2)
    signature(**{key_in: tf.constant([small.read_bytes()]) if case["kind"] == "bytes" else
                 tf.constant(images.read_rgb8(small)[None])})
  times = []
  for _ in range(case["runs"]):
    start = time.perf_counter()
    result = signature(**{key_in: x})[key_out]
    times.append(time.perf_counter() - start)
  out.update(common.summarize(times))
  out["images_per_s"] = batch / out["median"]
  if case.get("sizes"):
    from tensorflow_serving.apis import predict_pb2

    request, response = predict_pb2.PredictRequest(), predict_pb2.PredictResponse()
    request.inputs[key_in].CopyFrom(tf.make_tensor_proto(x.numpy()))
    response.outputs[key_out].CopyFrom(tf.make_tensor_proto(result.numpy()))
    out["request_bytes"], out["response_bytes"] = request.ByteSize(), response.ByteSize()
    if case["kind"] == "bytes":
      from fgrn_tf.runtime.serving_requests import rest_json

      out["rest_request_bytes"] = len(rest_json([data] * batch))
      # The codec's share: the same decode and encode ops alone, on these images.
      start = time.perf_counter()
      decoded = [tf.io.decode_png(d) for d in x.numpy()]
      decode = time.perf_counter() - start
      pixels = [tf.io.decode_png(r) for r in result.numpy()]
      from fgrn_tf.export.image_bytes import PNG_COMPRESSION

      start = time.perf_counter()
      for p in pixels:
        tf.io.encode_png(p, PNG_COMPRESSION)
      encode = time.perf_counter() - start
      del decoded
      out["codec_seconds"] = decode + encode
      out["codec_share"] = (decode + encode) / out["median"]
  out["peak_rss_mib"] = peak_rss_mib()
  return out


def peak_rss_mib() -> float:
  """This process's peak resident memory since it started (VmHWM: unlike ru_maxrss, it does
  not carry the parent's high-water mark across fork and exec)."""
  for line in pathlib.Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
      return int(line.split()[1]) / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_case(case: dict, timeout: float | None) -> dict:
  env = {**os.environ, "PYTHONPATH": str(common.ROOT), common.WORKER_ENV: "1",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  start = time.perf_counter()
  try:
    proc = subprocess.run([sys.executable, "-m", "bench.serving", "--worker", json.dumps(case)],
                          capture_output=True, text=True, env=env, cwd=common.ROOT,
                          timeout=timeout)
  except subprocess.TimeoutExpired:
    return {"status": "timeout", "wall": time.perf_counter() - start}
  lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
  if proc.returncode != 0 or not lines:
    tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:]
    return {"status": f"exit {proc.returncode}" + (f" ({tail[0][:160]})" if tail else ""),
            "wall": time.perf_counter() - start}
  return {"status": "ok", "wall": time.perf_counter() - start, **json.loads(lines[-1])}


# ---- the tables -------------------------------------------------------------------------------


SPEED_HEAD = ("| HR MP | batch | signature | s per request [min, max] | images/s | request bytes "
              "| response bytes | REST body bytes | PNG decode+encode share | peak RSS MiB |\n"
              "|---|---|---|---|---|---|---|---|---|---|")


def speed(model: pathlib.Path, folder: pathlib.Path, scale: int, sizes, batches, runs,
          timeout) -> list[dict]:
  rows = []
  print(SPEED_HEAD)
  for mp in sizes:
    side = _side(mp, scale)
    lr = _lr_file(folder, side, scale)
    for batch in batches:
      for kind in SIGNATURES:
        case = {"model": str(model), "kind": kind, "lr": str(lr), "batch": batch,
                "runs": runs(mp), "warmup": True, "sizes": True}
        r = {"mp": mp, "side": side, "batch": batch, "kind": kind, **_run_case(case, timeout)}
        rows.append(r)
        print(speed_line(r), flush=True)
  return rows


def speed_line(r: dict) -> str:
  """One row of the speed table."""
  name = SIGNATURES[r["kind"]][0]
  if r["status"] != "ok":
    return f"| {r['mp']:g} | {r['batch']} | {name} | {r['status']} | | | | | | |"
  share = f"{100 * r['codec_share']:.0f}%" if "codec_share" in r else "-"
  rest = f"{r['rest_request_bytes']:,}" if "rest_request_bytes" in r else "-"
  return (f"| {r['mp']:g} ({r['side']}x{r['side']}) | {r['batch']} | {name} | "
          f"{r['median']:.2f} [{r['min']:.2f}, {r['max']:.2f}] | {r['images_per_s']:.2f} | "
          f"{r['request_bytes']:,} | {r['response_bytes']:,} | {rest} | {share} | "
          f"{r['peak_rss_mib']:.0f} |")


def memory(model: pathlib.Path, folder: pathlib.Path, scale: int, sizes, timeout) -> list[dict]:
  rows, measured = [], {}
  print("\n| HR MP | LR in | signature | peak RSS MiB | seconds | status |")
  print("|---|---|---|---|---|---|")
  for mp in sizes:
    side = _side(mp, scale)
    lr = _lr_file(folder, side, scale)
    for kind in SIGNATURES:
      guess = predicted_mib(measured.get(kind, []), mp)
      if guess is not None and guess > 0.9 * available_mib():
        r = {"status": f"skipped: ~{guess:.0f} MiB predicted, {available_mib():.0f} available"}
      else:
        r = _run_case({"model": str(model), "kind": kind, "lr": str(lr), "batch": 1, "runs": 1},
                      timeout)
      if r["status"] == "ok":
        measured.setdefault(kind, []).append((mp, r["peak_rss_mib"]))
      rows.append({"mp": mp, "side": side, "kind": kind, **r})
      rss = f"{r['peak_rss_mib']:.0f}" if "peak_rss_mib" in r else "-"
      secs = f"{r['median']:.1f}" if "median" in r else "-"
      what = "tiled (tile of the export)" if kind == "bytes" else "whole image"
      print(f"| {mp:g} ({side}x{side}) | {side // scale}x{side // scale} | "
            f"{SIGNATURES[kind][0]}, {what} | {rss} | {secs} | {r['status']} |", flush=True)
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--preset", default="x2", help="network whose untrained weights are used")
  parser.add_argument("--tile", type=int, default=1024, help="the export's --tile")
  parser.add_argument("--sizes", default="0.25,1,4", help="speed: HR megapixels")
  parser.add_argument("--batches", default="1,4", help="speed: images per request")
  parser.add_argument("--memory_sizes", default="1,4,16,64", help="memory: HR megapixels")
  parser.add_argument("--skip_speed", action="store_true")
  parser.add_argument("--skip_memory", action="store_true")
  parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per case")
  parser.add_argument("--quick", action="store_true", help="smoke model, tiny images")
  parser.add_argument("--json_out", type=pathlib.Path, help="write the results here as JSON")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(worker(json.loads(args.worker))), flush=True)
    return 0
  common.announce("serving")
  if args.quick:
    args.preset, args.tile, args.sizes, args.batches = "smoke", 144, "0.01,0.04", "1,2"
    args.memory_sizes = "0.01,0.04"
  from fgrn_tf.config import preset as preset_of

  scale = preset_of(args.preset).model.scale
  sizes = [float(v) for v in args.sizes.split(",")]
  batches = [int(v) for v in args.batches.split(",")]
  results = {"machine": common.machine_info(probe_tf=False), "preset": args.preset,
             "tile": args.tile}
  with tempfile.TemporaryDirectory() as tmp:
    folder = pathlib.Path(tmp)
    start = time.perf_counter()
    model = _export(args.preset, args.tile, folder)
    print(f"model: {args.preset}, untrained weights; SavedModel exported with --tile {args.tile} "
          f"in {time.perf_counter() - start:.0f} s; each case a fresh process "
          f"(tf.saved_model.load); load {common.load_average()}\n")
    if not args.skip_speed:
      print("Upscale, one request (after one warm-up request of a small image): seconds and "
            "images/s; gRPC sizes as serialized; the REST body of the bytes signature (base64 "
            "JSON); the share of the bytes signature's time that decoding the PNGs in and "
            "encoding the PNGs out take (the same TF ops timed alone).\n")
      results["speed"] = speed(model, folder, scale, sizes, batches,
                               lambda mp: 3 if mp <= 0.25 else 2 if mp <= 1 else 1, args.timeout)
    if not args.skip_memory:
      print("\nPeak RSS of one upscale request (batch 1) in a fresh process, model load "
            "included.")
      results["memory"] = memory(model, folder, scale,
                                 [float(v) for v in args.memory_sizes.split(",")], args.timeout)
  if args.json_out:
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(results, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
