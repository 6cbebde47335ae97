"""Evaluation: methods x datasets -> results.json, results.md and one comparison figure per set.

The protocol of the rescaling literature (and of FGRN's Tables 1-2, Li et al., BMVC 2021): HR
mod-cropped to the scale; LR = method's downscale (uint8), SR = its upscale of that LR (uint8);
PSNR/SSIM on Y (BT.601, float64, unrounded) with `scale` border pixels dropped; NIQE and PIQE
on the rounded Y of the LR; the LR's Y-PSNR against the MATLAB-bicubic LR (no border dropped).
Inputs are checked by `inputs`, the output folder by `outputs`, the reports are drawn
by `report`. See docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from fgrn_tf.data import codecs as codec_lib
from fgrn_tf.data import images
from fgrn_tf.data.imresize import bicubic_uint8
from fgrn_tf.evaluate import inputs, outputs, report
from fgrn_tf.evaluate.inputs import METHODS, Dataset, EvalError
from fgrn_tf.metrics.niqe import PARAMS_ENV, NiqeParams, default_params_path, load_niqe_params, niqe
from fgrn_tf.metrics.piqe import piqe
from fgrn_tf.metrics.psnr_ssim import crop_border, mod_crop, psnr, psnr_y, rgb_to_y, ssim
from fgrn_tf.progress import Progress
from fgrn_tf.runtime import resolve

__all__ = ["METHODS", "EvalError", "Method", "bicubic_method", "evaluate", "evaluate_image",
           "fgrn_method"]


@dataclasses.dataclass(frozen=True)
class Method:
  """A rescaling method: uint8 HR `[H, W, 3]` -> uint8 LR, uint8 LR -> uint8 SR."""

  name: str
  downscale: Callable[[np.ndarray], np.ndarray]
  upscale: Callable[[np.ndarray], np.ndarray]


def bicubic_method(scale: int) -> Method:
  """MATLAB-bicubic down and up (the project's one bicubic), rounded to uint8 each way."""
  return Method("bicubic", lambda hr: bicubic_uint8(hr, scale),
                lambda lr: bicubic_uint8(lr, scale, up=True))


def fgrn_method(model, scale: int, precision: str = "float32") -> Method:
  """A trained FGRN through `resolve.open_model` (workdir, export, SavedModel or .tflite pair).

  Args:
    model: what `resolve.model_spec` takes; None: the shipped model of `scale`.
    scale: the scale asked for; a model of another scale is refused.

  Raises:
    FGRNError: no model there, it does not load, or it is of another scale.
  """
  backend = resolve.open_model(resolve.model_spec(model, scale), scale, precision=precision)
  return Method("fgrn", lambda hr: backend.downscale(hr[None])[0],
                lambda lr: backend.upscale(lr[None])[0])


def _y_quality(hr: np.ndarray, sr: np.ndarray, scale: int) -> dict:
  """PSNR and SSIM of the reconstruction on Y with `scale` border pixels dropped."""
  y_hr, y_sr = (crop_border(rgb_to_y(im), scale) for im in (hr, sr))
  return {"psnr": psnr(y_hr, y_sr), "ssim": ssim(y_hr, y_sr)}


def _y8(rgb: np.ndarray) -> np.ndarray:
  """Rounded Y as uint8 (MATLAB `rgb2ycbcr` on uint8), the input of NIQE and PIQE."""
  return np.round(rgb_to_y(rgb)).astype(np.uint8)


def evaluate_image(hr: np.ndarray, method: Method, scale: int, bicubic_lr: np.ndarray,
                   niqe_params: NiqeParams | None, lr: np.ndarray | None = None):
  """Metrics of one method on one mod-cropped uint8 HR image.

  Args:
    hr: uint8 `[H, W, 3]`, H and W multiples of `scale`.
    method: the method to run.
    scale: the scale.
    bicubic_lr: uint8 `[H/s, W/s, 3]`, the MATLAB-bicubic LR (reference for `lr_psnr`).
    niqe_params: pristine NIQE model, or None to skip NIQE.
    lr: the method's LR when already computed.

  Returns:
    (record: dict of psnr, ssim, lr_psnr, piqe[, niqe, niqe_undefined], lr uint8, sr uint8).
  """
  lr = method.downscale(hr) if lr is None else lr
  sr = method.upscale(lr)
  expect_lr = (hr.shape[0] // scale, hr.shape[1] // scale, 3)
  if lr.shape != expect_lr or sr.shape != hr.shape:
    raise EvalError(f"{method.name}: returned LR {lr.shape} / SR {sr.shape} for HR {hr.shape}")
  y_lr = _y8(lr)
  lr_bytes = len(codec_lib.PNG.encode(lr))
  record = {
    **_y_quality(hr, sr, scale),
    "lr_psnr": psnr_y(lr, bicubic_lr, 0),
    # Y hides colour speckle in an LR that RGB shows (a shipped x2 LR: 42 dB Y, 36 dB RGB).
    "lr_psnr_rgb": psnr(lr.astype(np.float64), bicubic_lr.astype(np.float64)),
    "piqe": piqe(y_lr),
    "lr_bytes": lr_bytes,
    "bpp": codec_lib.bits_per_pixel(lr_bytes, hr.shape[0], hr.shape[1]),
  }
  if niqe_params is not None:
    result = niqe(y_lr, niqe_params)
    record["niqe"] = result.score
    if not result.defined:
      record["niqe_undefined"] = result.reason
  return record, lr, sr


def evaluate_through_codec(hr: np.ndarray, method: Method, scale: int, lr: np.ndarray,
                           codec: codec_lib.Codec) -> dict:
  """The round trip when the LR is stored with `codec` between downscale and upscale.

  Args:
    hr: uint8 `[H, W, 3]`, H and W multiples of `scale`.
    method: its `upscale` is applied to the decoded LR.
    scale: the scale (border of the Y metrics).
    lr: the method's uint8 LR of `hr`.
    codec: the real encoder and decoder (`fgrn_tf.data.codecs`).

  Returns:
    Record of psnr, ssim (Y of the reconstruction), lr_bytes (the encoded LR), bpp (its bits
    per HR pixel) and lr_codec_psnr (Y PSNR of the decoded LR against the LR sent).
  """
  decoded, size = codec.roundtrip(lr)
  sr = method.upscale(decoded)
  return {**_y_quality(hr, sr, scale), "lr_bytes": size,
          "bpp": codec_lib.bits_per_pixel(size, hr.shape[0], hr.shape[1]),
          "lr_codec_psnr": psnr_y(decoded, lr, 0)}


def _mean(values):
  values = [v for v in values if v is not None]
  if not values:
    return None
  return float(np.mean(values))


def _rate(records: list[dict]) -> dict:
  """Bytes of the dataset's LRs and their bits per HR pixel (all bits over all pixels)."""
  size = sum(r["lr_bytes"] for r in records)
  pixels = sum(r["size"][0] * r["size"][1] for r in records)
  return {"lr_bytes": size, "bpp": 8.0 * size / pixels if pixels else None}


def _summary(records: list[dict], niqe_on: bool) -> dict:
  out = {"images": len(records),
         "psnr": _mean([r["psnr"] for r in records]),
         "ssim": _mean([r["ssim"] for r in records]),
         "lr_psnr": _mean([r["lr_psnr"] for r in records]),
         "lr_psnr_rgb": _mean([r["lr_psnr_rgb"] for r in records]),
         "piqe": _mean([r["piqe"] for r in records]),
         **_rate(records)}
  if niqe_on:
    defined = [r["niqe"] for r in records if r["niqe"] is not None]
    out["niqe"] = _mean(defined)
    out["niqe_defined"] = len(defined)
    out["niqe_undefined"] = len(records) - len(defined)
  return out


def _read_hr(path: str, scale: int) -> tuple[np.ndarray | None, str | None]:
  """(mod-cropped uint8 HR, None), or (None, why the file is skipped)."""
  try:
    hr = mod_crop(images.read_rgb8(path), scale)
  except images.ImageError as e:
    return None, str(e)
  need = inputs.min_side(scale)
  if min(hr.shape[:2]) < need:
    return None, (f"too small: {hr.shape[0]}x{hr.shape[1]} after mod-crop (needs {need} px "
                  f"per side at x{scale})")
  return hr, None


def _evaluate_dataset(ds: Dataset, names: list[str], runners: dict[str, Method], scale: int,
                      params: NiqeParams | None, progress: bool,
                      lossy: Sequence[codec_lib.Codec] = ()):
  """(results.json entry of `ds`, figure PNG bytes or None): every method on every image,
  with the LR kept lossless and through each of the `lossy` codecs."""
  records = {n: [] for n in names}
  through = {c.spec: {n: [] for n in names} for c in lossy}
  skipped = []
  figure_data = None
  bic = runners["bicubic"]
  bar = Progress(len(ds.files), f"{ds.name} x{scale}", "images/s", enabled=progress,
                 every_seconds=5.0)
  for path in ds.files:
    name = pathlib.Path(path).stem
    bar.update(name)
    hr, reason = _read_hr(path, scale)
    if hr is None:
      skipped.append({"name": name, "reason": reason})
      bar.advance(name, ok=False)
      continue
    bic_lr = bic.downscale(hr)
    per_method = {}
    for n in names:
      record, lr, sr = evaluate_image(hr, runners[n], scale, bic_lr, params,
                                      lr=bic_lr if n == "bicubic" else None)
      records[n].append({"name": name, "size": list(hr.shape[:2]), **record})
      per_method[n] = (lr, sr, record)
      for codec in lossy:
        through[codec.spec][n].append({"name": name, "size": list(hr.shape[:2]),
                                       **evaluate_through_codec(hr, runners[n], scale, lr, codec)})
    if figure_data is None:
      if "bicubic" not in per_method:  # the figure always shows the bicubic baseline
        bic_sr = bic.upscale(bic_lr)
        per_method["bicubic"] = (bic_lr, bic_sr,
                              {"psnr": psnr_y(hr, bic_sr, scale), "lr_psnr": math.inf})
      figure_data = (name, hr, per_method)
    bar.advance(name)
  bar.close()
  entry = {"path": str(ds.path), "files": len(ds.files),
           "evaluated": len(ds.files) - len(skipped), "skipped": skipped, "methods": {}}
  for n in names:
    entry["methods"][n] = {**_summary(records[n], params is not None), "per_image": records[n]}
  if lossy:
    entry["codecs"] = {
        spec: {n: {"images": len(rs), "psnr": _mean([r["psnr"] for r in rs]),
                   "ssim": _mean([r["ssim"] for r in rs]), **_rate(rs),
                   "lr_codec_psnr": _mean([r["lr_codec_psnr"] for r in rs]), "per_image": rs}
               for n, rs in by_method.items()}
        for spec, by_method in through.items()}
  figure = None
  if figure_data is not None:
    figure = report.render_figure(*figure_data, scale=scale)
    entry["figure"] = outputs.figure_name(ds.name, scale)
  return entry, figure


ROW_FIELDS = ("psnr", "ssim", "lr_bytes", "bpp", "lr_psnr", "lr_psnr_rgb", "piqe", "niqe")


def result_rows(results: dict) -> list[dict]:
  """One flat row per dataset x method x codec (the codecs in the order asked)."""
  rows = []
  for name, entry in results["datasets"].items():
    lossless = entry["methods"]
    for spec in results["codecs"]:
      table = lossless if spec == "png" else entry.get("codecs", {}).get(spec, {})
      for method, m in table.items():
        row = {"dataset": name, "method": method, "codec": spec, "images": m["images"]}
        for field in ROW_FIELDS:  # the LR's own figures come from the lossless LR
          value = m.get(field, lossless.get(method, {}).get(field))
          if value is not None:
            row[field] = value
        rows.append(row)
  return rows


def _protocol(scale: int, niqe_on: bool) -> dict:
  return {
    "hr": f"mod-cropped to multiples of {scale}",
    "psnr_ssim": f"Y (BT.601, 16..235, float64, unrounded), {scale}-px border dropped; "
                 "SSIM 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, valid-region mean",
    "lr_psnr": "Y PSNR of the method's LR against the MATLAB-bicubic LR, no border dropped "
               "(lr_psnr_rgb: the same over the RGB channels)",
    "codecs": "the LR through OpenCV's encoder and decoder (JPEG: libjpeg-turbo, 4:2:0; "
              "WebP: libwebp; PNG: lossless) before the upscale; lr_bytes = encoded LR, "
              "bpp = its bits per HR pixel (dataset: all bits over all HR pixels)",
    "niqe": "MATLAB niqe on the rounded Y of the LR; null when undefined (see reason)"
            if niqe_on else "not computed",
    "piqe": "MATLAB piqe on the rounded Y of the LR",
  }


def evaluate(methods: Sequence[str], scale: int, datasets: Sequence[str], output_dir,
             model=None, data_root=None, niqe_params=None, progress: bool = True,
             overwrite: bool = False, codecs: str | Sequence[str] = ("png",),
             precision: str = "float32") -> dict:
  """Evaluates methods on datasets and writes results.json, results.md and figures.

  Args:
    methods: names from METHODS.
    scale: integer rescaling factor.
    datasets: names under the data root, or paths.
    output_dir: where the outputs go (created). Refused, before anything is loaded, when it
      cannot be written, is or is inside a dataset being evaluated, or holds images this
      tool did not write.
    model: FGRN model path for the "fgrn" method (None: the bundled fgrn_x{scale}).
    data_root: folder of named datasets (None: `inputs.default_data_root()`).
    niqe_params: path of the NIQE pristine model, None for the default, or "none" to skip NIQE.
    progress: draw a progress bar on stderr.
    overwrite: replace results.json, results.md and figures already in `output_dir`.
    codecs: how the LR is stored between downscale and upscale (`fgrn_tf.data.codecs` specs:
      "png", "jpeg:90", "webp:90", ...). Each dataset's "methods" always holds the lossless
      results (the paper's protocol, with every metric, and the LR's own figures); each lossy
      codec adds a "codecs"[spec] entry; "rows" lists the codecs asked for, one row per
      dataset x method x codec.
    precision: what a Keras FGRN computes in (`fgrn_tf.models.precision`); recorded in the results.

  Returns:
    The results dict also written to results.json.

  Raises:
    EvalError: bad input, with a one-line message.
  """
  if not isinstance(scale, int) or scale < 2:
    raise EvalError(f"--scale must be an integer >= 2, got {scale!r}")
  names = inputs.parse_methods(methods)
  chosen = codec_lib.parse_list(codecs)
  lossy = [c for c in chosen if not c.lossless]
  output_dir = outputs.check_output_dir(output_dir)
  sets = inputs.resolve_datasets(datasets, data_root)
  outputs.check_outputs(output_dir, sets, scale, overwrite)
  params, niqe_note = None, None
  if isinstance(niqe_params, str) and niqe_params.lower() == "none":
    pass
  elif niqe_params is None and default_params_path() is None:
    # NIQE needs a data file the repository does not ship; the other metrics do not, so the
    # evaluation runs without it and results.md says why its NIQE cells read n/c.
    niqe_note = (f"n/c: NIQE not computed, no pristine parameters given (pass --niqe_params or "
                 f"set {PARAMS_ENV}).")
  else:
    try:
      params = load_niqe_params(niqe_params)
    except (OSError, ValueError) as e:
      raise EvalError(str(e)) from None
  runners = {"bicubic": bicubic_method(scale)}
  spec = resolve.model_spec(model, scale) if "fgrn" in names else None
  if spec is not None:
    runners["fgrn"] = fgrn_method(spec, scale, precision)

  results = {
    "scale": scale,
    "methods": names,
    "model": None if spec is None else resolve.describe(spec),
    "codecs": [c.spec for c in chosen],
    "precision": precision,
    "protocol": _protocol(scale, params is not None),
    "datasets": {},
  }
  figures: dict[str, bytes] = {}  # written with the results, once everything has run
  for ds in sets:
    entry, figure = _evaluate_dataset(ds, names, runners, scale, params, progress, lossy)
    results["datasets"][ds.name] = entry
    if figure is not None:
      figures[entry["figure"]] = figure
  results["rows"] = result_rows(results)
  markdown = report.render_markdown(results)
  if niqe_note:
    markdown += f"\n{niqe_note}\n"
  # results.json last: when it is there, so is everything it names.
  outputs.write_outputs(output_dir, {
      **figures, outputs.RESULTS_MD: markdown.encode(),
      outputs.RESULTS_JSON: report.json_bytes(results)}, overwrite)
  return results
