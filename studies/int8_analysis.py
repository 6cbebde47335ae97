"""Where full-integer int8 loses the upscaler's quality, and which mixed variant keeps it.

Converts the upscale half of a model with int8 activations (calibrated on LRs of training
crops) under TFLite's quantization debugger, which runs the float and the quantized op side by
side and reports each quantized tensor's error (RMSE over its quantization step). It then
builds selectively quantized upscalers, with the ops of one module left float (the debugger's
`denylisted_nodes`), and scores each on whole images: the HR from the Keras downscale's LR,
Y PSNR against the original (the evaluation's protocol), beside the float upscaler's.

Node names carry the Keras scopes: Gu's ops sit under "Gu" (or "Gu_1"); F's dense blocks are
called from `inverse` (not through a layer call), so F's ops, with the coupling arithmetic and
the input scaling around them, are all the others.

  .venv/bin/python -m studies.int8_analysis --model fgrn_x2 --images DATA/Set5
  .venv/bin/python -m studies.int8_analysis --quick      # a tiny network and image: checks the code
"""

from __future__ import annotations

import math
import pathlib
import statistics
import sys
import tempfile

from bench import common
from fgrn_tf import files

VARIANTS = {
    "float (float32 TFLite)": None,
    "full int8": [],
    "int8 Gu, F float": "F",
    "int8 F, Gu float": "Gu",
    "int8 Gu convs, F and Gu's adds float": "F+adds",
}


def _module(name: str) -> str:
  """Gu for Gu's ops, F for the flow's and the glue around it."""
  from fgrn_tf.export.tflite import in_scopes

  return "Gu" if in_scopes(name, ("Gu",)) else "F"


def analyse(model, images, calibration, tmp: pathlib.Path) -> dict:
  import numpy as np
  import tensorflow as tf

  from fgrn_tf.export import saved_model
  from fgrn_tf.metrics.psnr_ssim import psnr_y

  sm = saved_model.write(model, tmp / "sm" / "1")
  lrs = [model.downscale(hr[None]).numpy() for hr in images]
  calib_lrs = [model.downscale(c).numpy() for c in calibration]

  def representative():
    for lr in calib_lrs:
      yield [lr]

  def converter():
    c = tf.lite.TFLiteConverter.from_saved_model(str(sm), signature_keys=["upscale"])
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = representative
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                   tf.lite.OpsSet.TFLITE_BUILTINS]
    return c

  debugger = tf.lite.experimental.QuantizationDebugger(
      converter=converter(), debug_dataset=representative)
  debugger.run()
  stats = tmp / "layers.csv"
  with open(stats, "w") as f:
    debugger.layer_statistics_dump(f)
  per_module = _per_module(stats)
  names = _quantized_nodes(stats)

  def score(content) -> float:
    interpreter = tf.lite.Interpreter(model_content=content, num_threads=2)
    values = []
    for hr, lr in zip(images, lrs, strict=True):
      runner = interpreter.get_signature_runner("upscale")
      out = runner(lr=lr)
      sr = next(iter(out.values()))[0]
      values.append(psnr_y(hr, sr.astype(np.uint8), model.scale))
    return statistics.mean(values)

  plain = tf.lite.TFLiteConverter.from_saved_model(str(sm), signature_keys=["upscale"])
  scores = {}
  for label, keep_float in VARIANTS.items():
    if keep_float is None:
      content = plain.convert()
    else:
      deny = [n for n, op in names if _module(n) == keep_float.split("+")[0]
              or (keep_float.endswith("+adds") and op == "ADD")] if keep_float else []
      options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=deny)
      d = tf.lite.experimental.QuantizationDebugger(
          converter=converter(), debug_dataset=representative, debug_options=options)
      content = d.get_nondebug_quantized_model()
    scores[label] = {"psnr": score(content), "bytes": len(content)}
    common.progress("int8", f"{label}: {scores[label]['psnr']:.2f} dB, {len(content)} bytes")
  return {"per_module": per_module, "variants": scores}


def _rows(stats: pathlib.Path) -> list[dict]:
  import csv

  with open(stats) as f:
    return list(csv.DictReader(f))


def _quantized_nodes(stats: pathlib.Path) -> list[tuple[str, str]]:
  """(tensor name, op name) of every quantized tensor."""
  return [(row["tensor_name"], row["op_name"]) for row in _rows(stats)]


def _per_module(stats: pathlib.Path) -> dict:
  """Per module: quantized tensors, the median and worst RMSE / scale, and the worst op."""
  out = {}
  for row in _rows(stats):
    value = math.sqrt(float(row["mean_squared_error"])) / float(row["scale"])
    entry = out.setdefault(_module(row["tensor_name"]), {"tensors": 0, "values": [],
                                                         "worst": ("", -1.0)})
    entry["tensors"] += 1
    entry["values"].append(value)
    if value > entry["worst"][1]:
      entry["worst"] = (f"{row['op_name']} {row['tensor_name']}", value)
  return {m: {"tensors": e["tensors"], "median_rmse_per_scale": statistics.median(e["values"]),
              "max_rmse_per_scale": e["worst"][1], "worst": e["worst"][0]}
          for m, e in out.items()}


def report(info: dict, model_name: str, result: dict) -> str:
  lines = [common.machine_line(info, info.get("peak_gflops")), "",
           f"Upscaler of {model_name}: error of each quantized tensor (RMSE / quantization "
           "step; 0.29 is a perfect uniform rounding)", "",
           "| module | quantized tensors | median | worst | worst tensor |",
           "|---|---|---|---|---|"]
  for m, e in sorted(result["per_module"].items()):
    lines.append(f"| {m} | {e['tensors']} | {e['median_rmse_per_scale']:.2f} | "
                 f"{e['max_rmse_per_scale']:.1f} | {e['worst'][:70]} |")
  lines += ["", "| upscaler | Y PSNR (dB) | size (bytes) |", "|---|---|---|"]
  for label, v in result["variants"].items():
    lines.append(f"| {label} | {v['psnr']:.2f} | {v['bytes']:,} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = common.script_parser(__doc__)
  parser.add_argument("--model", default="", help="a model folder or bundled model's name "
                                                "(default: fgrn_x2)")
  parser.add_argument("--images", default="", help="image folder to score on")
  parser.add_argument("--calibration", default="", help="image folder to calibrate on "
                                                        "(default: the built-in photos)")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--json_out", type=pathlib.Path)
  args = parser.parse_args(argv)
  info = common.announce("int8_analysis") or common.machine_info()
  common.configure_tf()
  import numpy as np

  from fgrn_tf import workdir
  from fgrn_tf.data import defaults, images
  from fgrn_tf.export.tflite import representative_crops
  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.runtime import resolve

  if args.quick:
    model = FGRN(common.bench_model_config(2, True))
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)]
    calib = [pictures[0][None, :32, :32]]
    name = "the smoke network"
  else:
    path = resolve.model_spec(args.model or None, 2)
    model, name = workdir.load_model(path), path.name
    s = model.scale
    pictures = [images.read_rgb8(f) for f in images.list_images(args.images)]
    pictures = [p[:p.shape[0] - p.shape[0] % s, :p.shape[1] - p.shape[1] % s] for p in pictures]
    sources = (images.list_images(args.calibration) if args.calibration
               else defaults.default_image_files())
    # One shape for all: the debugger runs its dataset without resizing the interpreter.
    big = [im for im in (images.read_rgb8(f) for f in sources) if min(im.shape[:2]) >= 128]
    calib = representative_crops(big, s, crop=128, count=8)
  with tempfile.TemporaryDirectory(prefix="int8.") as tmp:
    result = analyse(model, pictures, calib, pathlib.Path(tmp))
  text = report(info, name, result)
  print(text)
  if args.json_out:
    files.write_json(args.json_out, {"machine": info, "markdown": text, **result})
  return 0


if __name__ == "__main__":
  sys.exit(main())
