"""Exporting a trained FGRN for deployment: SavedModel, .tflite pairs, and a checked manifest.

Output folder (built beside the target and renamed into place, so a failed export leaves
nothing half written):
  manifest.json                     scale, sizes, ops, input constraints, agreement with Keras
  <model_name>/<version>/           SavedModel (TF Serving: --model_base_path=OUT/<model_name>)
  tflite/<variant>/downscaler.tflite, upscaler.tflite     variant: float32, float16, int8, ...

Every artifact is run (SavedModel loaded back, .tflite files in the LiteRT interpreter) on a
check set and compared with the Keras model; SavedModel and float32 TFLite must agree within
`EXACT_LEVELS` everywhere or the export fails.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from export import saved_model, tflite
from fgrn_tf import backends, litert
from fgrn_tf.metrics.psnr_ssim import psnr_y

SAVEDMODEL = "savedmodel"
FORMATS = (SAVEDMODEL, *tflite.VARIANTS)
DEFAULT_FORMATS = FORMATS
# Artifacts that compute what Keras computes in float32. Their kernels sum in another order, and
# a value that lands on the other side of a rounding step inside the model (x = Q(Gd(y)), the
# snap of F^-1(lr)) moves the output by a level or two: the paper-sized x2 network, untrained,
# gave 2 on Set5. A broken conversion (e.g. the NaN of unfrozen variables) is off by tens.
EXACT_FORMATS = (SAVEDMODEL, "tflite_float32")
EXACT_LEVELS = 4
# Full-integer int8 ships only if its round trip loses at most this much PSNR against Keras.
DEFAULT_MAX_INT8_FULL_DROP_DB = 1.0
MANIFEST_FORMAT = "fgrn-export/1"


class ExportError(Exception):
  """The export cannot be made or failed its checks (one line for the user)."""


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
  """"savedmodel,tflite_float32" -> a tuple of known format names (ExportError otherwise)."""
  names = text.split(",") if isinstance(text, str) else list(text)
  names = [n.strip() for n in names if n.strip()]
  unknown = [n for n in names if n not in FORMATS]
  if unknown or not names:
    raise ExportError(f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from "
                      f"{', '.join(FORMATS)}")
  return tuple(dict.fromkeys(names))


def default_image_files(workdir) -> list[str]:
  """Images to check (and calibrate int8) on: the run's validation folder, else its training
  folders (those present on this machine), else the built-in photos."""
  from fgrn_tf.data import defaults, images
  from fgrn_tf.workdir import read_experiment

  train = read_experiment(workdir).train
  if train.val_dir and pathlib.Path(train.val_dir).is_dir():
    return images.list_images(train.val_dir)
  # A shipped model's recorded folders may not exist on this machine: the built-in photos then.
  dirs = [d for d in train.data_dirs if pathlib.Path(d).is_dir()]
  if dirs:
    return images.list_images(dirs)
  return defaults.default_image_files()


def load_check_images(files: Sequence[str], scale: int, crop: int = 256,
                      limit: int = 5) -> list[tuple[str, np.ndarray]]:
  """(name, uint8 `[H, W, 3]`) for up to `limit` files: centre crops of at most `crop` pixels
  (0 = whole images), mod-cropped to the scale."""
  from fgrn_tf.data.images import read_rgb8
  from fgrn_tf.metrics.psnr_ssim import mod_crop

  out = []
  for path in list(files)[:limit]:
    rgb = read_rgb8(path)
    if crop:
      h, w = rgb.shape[:2]
      top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
      rgb = rgb[top:top + crop, left:left + crop]
    rgb = mod_crop(rgb, scale)
    if min(rgb.shape[:2]) < 2 * scale:
      continue
    out.append((pathlib.Path(path).name, np.ascontiguousarray(rgb)))
  if not out:
    raise ExportError(f"no usable check images among {len(files)} file(s)")
  return out


def _absdiff(a: np.ndarray, b: np.ndarray) -> int:
  if a.shape != b.shape:
    raise ExportError(f"output shape {a.shape} differs from Keras {b.shape}")
  return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def _mean_psnr(values: list[float]) -> float:
  finite = [min(v, 100.0) for v in values]  # identical images give inf; 100 dB stands for it
  return round(float(np.mean(finite)), 3)


def reference(keras_backend, images) -> list[tuple[np.ndarray, np.ndarray]]:
  """Keras's (LR, round-trip HR) per check image: what every artifact is compared with."""
  out = []
  for _, hr in images:
    lr = keras_backend.downscale(hr[None])[0]
    out.append((lr, keras_backend.upscale(lr[None])[0]))
  return out


def agreement(backend, images, ref, scale: int) -> dict:
  """How closely `backend` reproduces Keras on the check set.

  Returns:
    downscale_max_abs_diff / upscale_max_abs_diff: largest difference in uint8 levels from
      Keras on the same input (the upscaler is fed Keras's LR); roundtrip_psnr_y: mean PSNR
      (Y, border `scale`) of HR -> this downscale -> this upscale; keras_roundtrip_psnr_y the
      same through Keras; psnr_drop_db their difference.
  """
  down = up = 0
  own, keras = [], []
  for (_, hr), (lr_k, sr_k) in zip(images, ref, strict=True):
    lr = backend.downscale(hr[None])[0]
    down = max(down, _absdiff(lr, lr_k))
    up = max(up, _absdiff(backend.upscale(lr_k[None])[0], sr_k))
    own.append(psnr_y(hr, backend.upscale(lr[None])[0], crop_border=scale))
    keras.append(psnr_y(hr, sr_k, crop_border=scale))
  own_psnr, keras_psnr = _mean_psnr(own), _mean_psnr(keras)
  return {"downscale_max_abs_diff": down, "upscale_max_abs_diff": up,
          "roundtrip_psnr_y": own_psnr, "keras_roundtrip_psnr_y": keras_psnr,
          "psnr_drop_db": round(keras_psnr - own_psnr, 3)}


def _size(path: pathlib.Path) -> int:
  if path.is_file():
    return path.stat().st_size
  return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export(model, output_dir, check_images: list[tuple[str, np.ndarray]],
           formats: Sequence[str] = DEFAULT_FORMATS, model_name: str | None = None,
           version: int = 1, calibration_images: list[np.ndarray] | None = None,
           max_int8_full_drop: float = DEFAULT_MAX_INT8_FULL_DROP_DB, overwrite: bool = False,
           source: dict | None = None, log: Callable[[str], None] = print) -> dict:
  """Writes the artifacts of `model` to `output_dir` and returns the manifest.

  Args:
    model: a trained `FGRN`.
    output_dir: the folder to create (must not exist, or be empty, unless `overwrite`).
    check_images: (name, uint8 `[H, W, 3]`, H and W multiples of the scale) to compare on.
    formats: names from `FORMATS`.
    model_name: the TF Serving model name (default `fgrn_x<scale>`).
    version: the TF Serving version folder.
    calibration_images: uint8 `[H, W, 3]` training images for full-integer int8 (default:
      the check images).
    max_int8_full_drop: full-integer int8 is left out (recorded as skipped) when its round
      trip PSNR is more than this many dB below Keras's.
    overwrite: replace an existing `output_dir`.
    source: what the model was loaded from, recorded in the manifest.
    log: receives one progress line per step.

  Raises:
    ExportError: bad arguments, an artifact with non-builtin ops, or one that disagrees with
      Keras (nothing is then left at `output_dir`).
  """
  formats = parse_formats(formats)
  scale = model.scale
  model_name = model_name or f"fgrn_x{scale}"
  output_dir = pathlib.Path(output_dir)
  if output_dir.exists() and not output_dir.is_dir():
    raise ExportError(f"{output_dir}: exists and is not a folder")
  if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
    raise ExportError(f"{output_dir}: exists and is not empty (pass --overwrite to replace it)")
  if not check_images:
    raise ExportError("no check images: every artifact is compared with Keras on some")
  try:
    serving = saved_model.serving_dir(".", model_name, version)
  except ValueError as e:
    raise ExportError(str(e)) from None
  output_dir.parent.mkdir(parents=True, exist_ok=True)
  stage = pathlib.Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp",
                                        dir=output_dir.parent))
  try:
    manifest = _export_into(stage, model, serving, formats, check_images, calibration_images,
                            max_int8_full_drop, log)
    manifest.update(model_name=model_name, version=int(version), source=source or {})
    text = json.dumps(_ordered(manifest), indent=2, allow_nan=False)
    (stage / backends.MANIFEST).write_text(text + "\n")
    if output_dir.exists():
      shutil.rmtree(output_dir)
    stage.rename(output_dir)
  finally:
    shutil.rmtree(stage, ignore_errors=True)
  return manifest


def _export_into(stage, model, serving, formats, check_images, calibration_images,
                 max_int8_full_drop, log) -> dict:
  scale = model.scale
  keras_backend = backends.KerasBackend(model)
  ref = reference(keras_backend, check_images)
  artifacts: dict[str, dict] = {}

  # Every .tflite is converted from the SavedModel's signatures: write it even when only
  # .tflite files were asked for (then it is removed at the end).
  sm_dir = stage / serving
  log(f"SavedModel -> {serving}")
  saved_model.write(model, sm_dir)
  if SAVEDMODEL in formats:
    sm_backend = backends.SavedModelBackend(sm_dir)
    artifacts[SAVEDMODEL] = {
        "path": serving.as_posix(), "bytes": _size(sm_dir),
        "signatures": {**{k: {"input": i, "output": o} for k, (i, o) in
                          backends.SIGNATURES.items()},
                       "serving_default": backends.SERVING_DEFAULT},
        "agreement": agreement(sm_backend, check_images, ref, scale)}

  info = {"scale": scale, "model_config": model.model_config.to_dict()}
  for name in formats:
    if name == SAVEDMODEL:
      continue
    variant = tflite.VARIANTS[name]
    folder = pathlib.Path("tflite") / variant.folder
    files = {}
    for half, file_name in backends.TFLITE_FILES.items():
      log(f"{name}: {file_name}")
      representative = None
      if variant.calibrate:
        representative = _representative(keras_backend, half, scale,
                                         calibration_images or [im for _, im in check_images])
      try:
        content = tflite.convert(sm_dir, half, variant, representative)
      except Exception as e:  # converter errors are long MLIR dumps: keep the first line
        raise ExportError(f"{name}: converting {file_name} failed: {_first_line(e)}") from None
      path = tflite.write(stage / folder / file_name, content,
                          {**info, "half": half, "format": name})
      files[half] = {"path": (folder / file_name).as_posix(), "bytes": path.stat().st_size,
                     "ops": litert.ops(content)}
    backend = backends.TFLiteBackend(stage / files["downscale"]["path"],
                                     stage / files["upscale"]["path"])
    artifacts[name] = {"description": variant.description, "files": files,
                       "bytes": sum(f["bytes"] for f in files.values()),
                       "agreement": agreement(backend, check_images, ref, scale)}
    del backend  # frees the interpreters before the next conversion

  for name in EXACT_FORMATS:
    if name in artifacts:
      a = artifacts[name]["agreement"]
      worst = max(a["downscale_max_abs_diff"], a["upscale_max_abs_diff"])
      if worst > EXACT_LEVELS:
        raise ExportError(f"{name} differs from the Keras model by {worst} uint8 levels (allowed "
                          f"{EXACT_LEVELS}): the conversion is broken, nothing was written")
  for name in quality_gate(artifacts, stage, max_int8_full_drop):
    log(f"{name}: {artifacts[name]['skipped']}")
  if SAVEDMODEL not in formats:
    shutil.rmtree(stage / serving.parts[0])

  return {
      "format": MANIFEST_FORMAT,
      "exported_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
      "scale": scale,
      "model_config": model.model_config.to_dict(),
      "inputs": {
          "downscale": {"input": "hr", "output": "lr", "dtype": "uint8",
                        "shape": [None, None, None, 3],
                        "constraint": f"RGB, H and W multiples of {scale}; output "
                                      f"[N, H/{scale}, W/{scale}, 3]"},
          "upscale": {"input": "lr", "output": "hr", "dtype": "uint8",
                      "shape": [None, None, None, 3],
                      "constraint": f"RGB, any h and w; output [N, {scale}h, {scale}w, 3]"},
      },
      "check_set": {"images": [n for n, _ in check_images],
                    "sizes": [list(im.shape[:2]) for _, im in check_images],
                    "psnr": f"Y of YCbCr (BT.601), {scale} border pixels cropped, mean over "
                            f"images (100 dB stands for identical)"},
      "artifacts": artifacts,
  }


def quality_gate(artifacts: dict, root: pathlib.Path, max_drop: float) -> list[str]:
  """Leaves full-integer int8 out when its round trip loses more than `max_drop` dB to Keras.

  Its manifest entry stays, marked `skipped` with the reason and without file paths; its files
  under `root` are deleted. Returns the names left out.
  """
  full = artifacts.get("tflite_int8_full")
  drop = full["agreement"]["psnr_drop_db"] if full else None
  if full is None or drop <= max_drop:
    return []
  full["skipped"] = f"round trip {drop} dB below Keras (limit {max_drop} dB): not shipped"
  for f in full["files"].values():
    path = root / f.pop("path")
    path.unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
      path.parent.rmdir()
  return ["tflite_int8_full"]


def _representative(keras_backend, half, scale, images):
  """Calibration inputs for one half: HR crops, or (upscaler) Keras's LR of those crops."""
  crops = tflite.representative_crops(images, scale)
  if half == "upscale":
    crops = [keras_backend.downscale(c) for c in crops]

  def gen():
    for c in crops:
      yield [c]

  return gen


def _first_line(e: Exception) -> str:
  text = str(e).strip()
  return text.splitlines()[0][:300] if text else type(e).__name__


def _ordered(manifest: dict) -> dict:
  keys = ("format", "model_name", "version", "scale", "exported_at", "source", "inputs",
          "model_config", "check_set", "artifacts")
  return {k: manifest[k] for k in keys if k in manifest} | manifest


def summary(manifest: dict) -> list[str]:
  """One line per artifact: size, agreement with Keras (for the export's output)."""
  lines = []
  for name, a in manifest["artifacts"].items():
    g = a["agreement"]
    mark = f"  SKIPPED: {a['skipped']}" if "skipped" in a else ""
    lines.append(f"{name:17s} {a['bytes'] / 1e6:7.2f} MB  max diff down/up "
                 f"{g['downscale_max_abs_diff']}/{g['upscale_max_abs_diff']} levels  round trip "
                 f"{g['roundtrip_psnr_y']:.2f} dB (Keras {g['keras_roundtrip_psnr_y']:.2f}, "
                 f"drop {g['psnr_drop_db']:+.2f}){mark}")
  return lines

