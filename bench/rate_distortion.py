"""Rate-distortion of rescaling through real codecs: bits per HR pixel against Y PSNR.

What a user saves by downscaling is bytes, so a rescaling model earns its place only if its
LR, stored as people store images, reconstructs better than the alternatives at the same bits.
For each dataset and scale this measures, on every image (mod-cropped, Y PSNR with a border of
the scale, as in the paper's tables):

- `hr-jpeg`, `hr-webp`: the HR image itself through the codec (no rescaling), q 10..95;
- `bicubic-png`, `bicubic-jpeg`, `bicubic-webp`: MATLAB-bicubic LR, through the codec, bicubic up;
- `<model>-png`, `<model>-jpeg`, `<model>-webp`: the model's LR through the codec, its upscaler
  (q 50..95: below that the FGRN LRs are not what anyone would ship).

Bits per pixel are the encoded LR's (or HR's) bits over the HR pixels, summed over the dataset;
PSNR is the mean over images. Each curve is also summarised against `bicubic-jpeg` by the
Bjontegaard delta rate (the average bit saving at equal PSNR over the PSNR range both cover;
negative = fewer bits) and by PSNR at matched bpp.

  .venv/bin/python -m bench.rate_distortion --data_root DATASETS --datasets Set5,Set14
  .venv/bin/python -m bench.rate_distortion --quick   # tiny model, two small images
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sys

import numpy as np

from bench import common

HR_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
LR_QUALITIES = HR_QUALITIES
MODEL_QUALITIES = (50, 60, 70, 80, 90, 95)
MATCHED_BPP = (0.25, 0.5, 1.0, 2.0)
ANCHOR = "bicubic-jpeg"


def y_psnr(hr: np.ndarray, out: np.ndarray, border: int) -> float:
  from fgrn_tf.metrics.psnr_ssim import crop_border, psnr, rgb_to_y

  return psnr(crop_border(rgb_to_y(hr), border), crop_border(rgb_to_y(out), border))


def curves_for_image(hr: np.ndarray, scale: int, models: dict, quick: bool) -> dict:
  """{curve: {spec: (psnr, bytes)}} for one uint8 HR image."""
  from fgrn_tf.data import codecs

  hr_q = HR_QUALITIES[::3] if quick else HR_QUALITIES
  model_q = MODEL_QUALITIES[::2] if quick else MODEL_QUALITIES
  out: dict[str, dict[str, tuple[float, int]]] = {}
  for kind in ("jpeg", "webp"):
    out[f"hr-{kind}"] = {}
    for q in hr_q:
      decoded, size = codecs.Codec(kind, q).roundtrip(hr)
      out[f"hr-{kind}"][f"{kind}:{q}"] = (y_psnr(hr, decoded, scale), size)
  from fgrn_tf.evaluate.evaluator import bicubic_method

  bic = bicubic_method(scale)  # the evaluation's own bicubic, so both tell the same story
  down, up = bic.downscale, bic.upscale
  pairs = {"bicubic": (down, up, hr_q)}
  for name, backend in models.items():
    pairs[name] = (lambda x, b=backend: b.downscale(x[None])[0],
                   lambda x, b=backend: b.upscale(x[None])[0], model_q)
  for name, (down_fn, up_fn, qualities) in pairs.items():
    lr = down_fn(hr)
    for codec in [codecs.PNG] + [codecs.Codec(k, q) for k in ("jpeg", "webp") for q in qualities]:
      decoded, size = codec.roundtrip(lr)
      out.setdefault(f"{name}-{codec.kind}", {})[codec.spec] = (
          y_psnr(hr, up_fn(decoded), scale), size)
  return out


def aggregate(per_image: list[tuple[dict, int]]) -> dict:
  """[(curves, HR pixels)] -> {curve: [(bpp, mean psnr, spec)] sorted by bpp}."""
  pixels = sum(n for _, n in per_image)
  result = {}
  for curve in per_image[0][0]:
    points = []
    for spec in per_image[0][0][curve]:
      psnrs = [c[curve][spec][0] for c, _ in per_image]
      bits = 8.0 * sum(c[curve][spec][1] for c, _ in per_image)
      points.append((bits / pixels, float(np.mean(psnrs)), spec))
    result[curve] = sorted(points)
  return result


def bd_rate(anchor: list[tuple], test: list[tuple]) -> float | None:
  """Bjontegaard delta rate (%) of `test` against `anchor`: cubic fits of log-rate over PSNR,
  integrated over the PSNR range both curves cover. None if they do not overlap (or have
  fewer than 4 points, too few for the cubic)."""
  if len(anchor) < 4 or len(test) < 4:
    return None
  (ra, pa), (rt, pt) = ([np.log([p[0] for p in c]), np.array([p[1] for p in c])]
                        for c in (anchor, test))
  lo, hi = max(pa.min(), pt.min()), min(pa.max(), pt.max())
  if hi <= lo:
    return None
  fa, ft = np.polyint(np.polyfit(pa, ra, 3)), np.polyint(np.polyfit(pt, rt, 3))
  diff = ((np.polyval(ft, hi) - np.polyval(ft, lo)) - (np.polyval(fa, hi) - np.polyval(fa, lo)))
  return float((np.exp(diff / (hi - lo)) - 1) * 100)


def psnr_at(points: list[tuple], bpp: float) -> float | None:
  """PSNR at `bpp` by linear interpolation along the curve (None outside its range)."""
  xs, ys = [p[0] for p in points], [p[1] for p in points]
  if len(xs) < 2 or not xs[0] <= bpp <= xs[-1]:
    return None
  return float(np.interp(bpp, xs, ys))


def markdown(results: dict) -> str:
  lines = []
  for key, curves in results.items():
    lines += [f"### {key}", "",
              f"| curve | points (bpp / dB) | BD-rate vs {ANCHOR} | "
              + " | ".join(f"dB at {b} bpp" for b in MATCHED_BPP) + " |",
              "|---|---|---|" + "---|" * len(MATCHED_BPP)]
    for name, points in curves.items():
      bd = bd_rate(curves.get(ANCHOR, []), points) if name != ANCHOR else 0.0
      at = [psnr_at(points, b) for b in MATCHED_BPP]
      shown = ", ".join(f"{p[2]} {p[0]:.2f}/{p[1]:.2f}" for p in points)
      lines.append(f"| {name} | {shown} | {'-' if bd is None else f'{bd:+.1f}%'} | "
                   + " | ".join("-" if v is None else f"{v:.2f}" for v in at) + " |")
    lines.append("")
  return "\n".join(lines)


def plot(results: dict, path: pathlib.Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker

  keys = list(results)
  fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.5), squeeze=False)
  # One colour per method (hr, bicubic, each model), one line style per codec: with a colour per
  # curve the default cycle of 10 repeats once three models are on one plot.
  methods = list(dict.fromkeys(name.rsplit("-", 1)[0] for c in results.values() for name in c))
  colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
  styles = {"jpeg": ("o", "-"), "webp": ("s", "--"), "png": ("*", "")}
  for ax, key in zip(axes[0], keys, strict=True):
    for name, points in results[key].items():
      method, kind = name.rsplit("-", 1)
      marker, line = styles.get(kind, ("o", "-"))
      ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, linestyle=line,
              ms=7 if marker == "*" else 3.5, color=colours[method], label=name)
    ax.set(xscale="log", xlabel="bits per HR pixel", ylabel="Y PSNR (dB)", title=key)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labels only at decades
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def from_csv(path: pathlib.Path) -> dict:
  """The results dict back from a CSV this script wrote."""
  results: dict = {}
  with path.open() as f:
    for row in csv.DictReader(f):
      key = f"{row['dataset']} x{row['scale']}"
      results.setdefault(key, {}).setdefault(row["curve"], []).append(
          (float(row["bpp"]), float(row["psnr_y"]), row["setting"]))
  return {k: {c: sorted(p) for c, p in v.items()} for k, v in results.items()}


def load_models(specs: list[str], scale: int, quick: bool, tmp: pathlib.Path) -> dict:
  """{name: backend}: the given models of this scale, or the shipped one (quick: a tiny one)."""
  from fgrn_tf import config
  from fgrn_tf.models.fgrn import FGRN
  from fgrn_tf.runtime import backends, resolve, shipped

  if quick:
    model = FGRN(config.smoke().model.replace(scale=scale))
    return {"fgrn-tiny": backends.KerasBackend(model)}
  found = {}
  for spec in specs or [str(shipped.default_model_path(scale))]:
    backend = backends.load_backend(resolve.model_spec(spec))
    if backend.scale == scale:
      found[pathlib.Path(spec).name] = backend
  return found


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_root", default=os.environ.get("FGRN_DATA_ROOT"),
                      help="folder holding the datasets (default $FGRN_DATA_ROOT)")
  parser.add_argument("--datasets", default="Set5,Set14")
  parser.add_argument("--scales", default="2,4")
  parser.add_argument("--models", default="",
                      help="comma-separated models (workdirs, exports); default: the shipped ones")
  parser.add_argument("--output_dir", type=pathlib.Path,
                      default=common.ROOT / "docs" / "benchmarks",
                      help="where rate_distortion.{csv,png,md,json} go")
  parser.add_argument("--quick", action="store_true", help="tiny model, two small images")
  parser.add_argument("--json_out", type=pathlib.Path, help="also write the results here")
  parser.add_argument("--from_csv", type=pathlib.Path,
                      help="measure nothing: redraw the plot and tables from this CSV")
  args = parser.parse_args(argv)
  if args.from_csv:
    results = from_csv(args.from_csv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    plot(results, args.output_dir / "rate_distortion.png")
    text = markdown(results)
    (args.output_dir / "rate_distortion.md").write_text(text)
    print(text)
    return 0
  common.tf_env.set_defaults()  # quiet TF and OpenCV before anything imports them
  common.announce("rate_distortion")
  from fgrn_tf.data import images
  from fgrn_tf.metrics.psnr_ssim import mod_crop

  if args.quick:  # two built-in photos, centre crops: checks the code in seconds
    from fgrn_tf.data import defaults

    crops = []
    for f in defaults.default_image_files()[:2]:
      im = images.read_rgb8(f)
      h, w = im.shape[0] // 2, im.shape[1] // 2
      crops.append(im[h - 48:h + 48, w - 48:w + 48])
    sets = {"quick": crops}
  else:
    if not args.data_root:
      parser.error("give --data_root (or set FGRN_DATA_ROOT) for the datasets")
    sets = {}
    for name in args.datasets.split(","):
      folder = pathlib.Path(args.data_root) / name
      files = images.list_images([folder]) if folder.is_dir() else []
      if not files:
        parser.error(f"no images in {folder}")
      sets[name] = [images.read_rgb8(f) for f in files]
  results, rows = {}, []
  for scale in [int(s) for s in args.scales.split(",")]:
    models = load_models([m for m in args.models.split(",") if m], scale, args.quick,
                         args.output_dir)
    for name, hrs in sets.items():
      per_image = []
      for hr in hrs:
        hr = mod_crop(hr, scale)
        per_image.append((curves_for_image(hr, scale, models, args.quick),
                          hr.shape[0] * hr.shape[1]))
      key = f"{name} x{scale}"
      results[key] = aggregate(per_image)
      common.progress("rate_distortion", f"{key}: {len(hrs)} images, {len(results[key])} curves")
      for curve, points in results[key].items():
        rows += [{"dataset": name, "scale": scale, "curve": curve, "setting": spec,
                  "bpp": f"{bpp:.4f}", "psnr_y": f"{p:.3f}"} for bpp, p, spec in points]
  out = args.output_dir
  out.mkdir(parents=True, exist_ok=True)
  with (out / "rate_distortion.csv").open("w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  plot(results, out / "rate_distortion.png")
  text = markdown(results)
  (out / "rate_distortion.md").write_text(text)
  print(text)
  if args.json_out:
    args.json_out.write_text(json.dumps({"rows": rows}, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
