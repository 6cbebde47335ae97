"""One set of weights, two backends: the bundled models' round trip on TensorFlow and on JAX.

  python -m bench.backend_parity --data_root DIR [--models fgrn_x2,fgrn_x4] [--dataset Set5]

Each backend runs in its own process (Keras picks its backend at import) over the same images
(mod-cropped to the scale, as fgrn-eval does): the LR each makes (uint8) and the round trip's
Y PSNR (border of the scale cropped, as fgrn-eval reports it). Prints, per model, the mean PSNR
on each backend, their difference (aim: under 0.01 dB) and how far the LRs are apart (aim: at
most 1 level), with the machine line. Exit status 1 when an aim is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from bench import common

BACKENDS = ("tensorflow", "jax")
PSNR_AIM_DB = 0.01
LR_AIM_LEVELS = 1


def _work(models: list[str], folder: pathlib.Path, out: pathlib.Path) -> None:
  """In a process on one backend: each model's LRs and round-trip PSNRs, into `out` (npz)."""
  from fgrn_tf import workdir
  from fgrn_tf.data import images
  from fgrn_tf.metrics.psnr_ssim import mod_crop, psnr_y
  from fgrn_tf.runtime import shipped

  paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp"))
  arrays = {}
  for name in models:
    model = workdir.load_model(shipped.model_dir(name))
    for path in paths:
      hr = mod_crop(images.read_rgb8(path), model.scale)
      lr = np.asarray(model.downscale(hr[None]))
      sr = np.asarray(model.upscale(lr))[0]
      arrays[f"{name}/{path.stem}/lr"] = lr[0]
      arrays[f"{name}/{path.stem}/psnr"] = np.float64(psnr_y(hr, sr, model.scale))
  np.savez(out, **arrays)


def _run_on(backend: str, models: list[str], folder: pathlib.Path, out: pathlib.Path) -> None:
  env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  subprocess.run([sys.executable, "-m", "bench.backend_parity", "--worker", str(out),
                  "--models", ",".join(models), "--folder", str(folder)],
                 cwd=common.ROOT, env=env, check=True)


def compare(results: dict[str, dict], models: list[str]) -> list[dict]:
  """Per model: mean PSNR on each backend, their difference, the largest LR difference."""
  rows = []
  for name in models:
    keys = sorted(k for k in results[BACKENDS[0]] if k.startswith(f"{name}/"))
    psnr = {b: float(np.mean([results[b][k] for k in keys if k.endswith("/psnr")]))
            for b in BACKENDS}
    lr_levels = max(int(np.abs(results[BACKENDS[0]][k].astype(int)
                               - results[BACKENDS[1]][k].astype(int)).max())
                    for k in keys if k.endswith("/lr"))
    rows.append({"model": name, "images": len(keys) // 2,
                 **{f"psnr_{b}": psnr[b] for b in BACKENDS},
                 "psnr_diff_db": abs(psnr["tensorflow"] - psnr["jax"]),
                 "lr_max_levels": lr_levels})
  return rows


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_root", default=os.environ.get("FGRN_DATA_ROOT", ""),
                      help="the folder of named datasets (default $FGRN_DATA_ROOT)")
  parser.add_argument("--dataset", default="Set5")
  parser.add_argument("--models", default="fgrn_x2,fgrn_x4")
  parser.add_argument("--json_out", default="")
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  models = args.models.split(",")
  if args.worker:
    _work(models, pathlib.Path(args.folder), pathlib.Path(args.worker))
    return 0
  folder = pathlib.Path(args.data_root) / args.dataset
  if not args.data_root or not folder.is_dir():
    parser.error(f"no dataset folder {folder} (give --data_root or set FGRN_DATA_ROOT)")
  with tempfile.TemporaryDirectory() as tmp:
    results = {}
    for backend in BACKENDS:
      out = pathlib.Path(tmp) / f"{backend}.npz"
      _run_on(backend, models, folder, out)
      with np.load(out) as f:
        results[backend] = dict(f)
  rows = compare(results, models)
  print(common.machine_line(common.machine_info()))
  print(f"\n{args.dataset}, round trip Y PSNR (dB) of the bundled weights on each backend\n")
  print("| model | images | TensorFlow | JAX | difference | LR levels apart |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['model']} | {r['images']} | {r['psnr_tensorflow']:.4f} | {r['psnr_jax']:.4f} "
          f"| {r['psnr_diff_db']:.4f} | {r['lr_max_levels']} |")
  if args.json_out:
    pathlib.Path(args.json_out).write_text(json.dumps({"rows": rows}, indent=2))
  missed = [r["model"] for r in rows
            if r["psnr_diff_db"] >= PSNR_AIM_DB or r["lr_max_levels"] > LR_AIM_LEVELS]
  if missed:
    print(f"aim missed (< {PSNR_AIM_DB} dB, <= {LR_AIM_LEVELS} level): {', '.join(missed)}")
  return 1 if missed else 0


if __name__ == "__main__":
  sys.exit(main())
