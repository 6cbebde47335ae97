"""Exporting a trained FGRN for deployment: SavedModel, .tflite pairs, and a checked manifest.

Output folder (built beside the target and renamed into place, so a failed export leaves
nothing half written; what it may replace: `folders`):
  manifest.json                     scale, sizes, ops, input constraints, agreement with Keras
  <model_name>/<version>/           SavedModel (TF Serving: --model_base_path=OUT/<model_name>)
  tflite/<variant>/downscaler.tflite, upscaler.tflite     variant: float32, float16, int8, ...

Every artifact is run (SavedModel loaded back, .tflite files in the LiteRT interpreter) on a
check set and compared with the Keras model (`agreement`); SavedModel and float32 TFLite must
agree within `agreement.EXACT_LEVELS` everywhere or the export fails.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Callable, Sequence

import numpy as np

from fgrn_tf.data import images
from fgrn_tf.errors import FGRNError, one_line
from fgrn_tf.export import (
  ExportError,
  agreement,
  folders,
  gpu_delegate,
  inputs,
  manifest,
  saved_model,
  server_config,
  tflite,
)
from fgrn_tf.export.bytes_signatures import ServingOptions
from fgrn_tf.files import write_text
from fgrn_tf.runtime import backends, litert, resolve
from fgrn_tf.workdir import weights_path

FORMATS = (saved_model.FORMAT, *tflite.VARIANTS)
# The mixed int8 variant runs TFLite's (experimental) quantization debugger over the
# calibration images, the slowest conversion: it is written when asked for.
DEFAULT_FORMATS = tuple(f for f in FORMATS if f != "tflite_int8_mixed")
# The SavedModel the .tflite files are converted from, inside the staging folder only.
TFLITE_SOURCE = ".tflite_source"


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
  """"savedmodel,tflite_float32" -> a tuple of known format names (ExportError otherwise)."""
  names = text.split(",") if isinstance(text, str) else list(text)
  names = [n.strip() for n in names if n.strip()]
  unknown = [n for n in names if n not in FORMATS]
  if unknown or not names:
    raise ExportError(f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from "
                      f"{', '.join(FORMATS)}")
  return tuple(dict.fromkeys(names))


def export_path(model_path, output_dir, formats: str | Sequence[str] = DEFAULT_FORMATS, *,
                scale: int | None = None, check_dir=None, check_count: int = 5,
                check_crop: int = 256, calibration_dir=None, overwrite: bool = False,
                log: Callable[[str], None] = print, **options) -> dict:
  """Exports the model at a path (what `fgrn-export` does); returns the manifest.

  Everything that needs no TensorFlow is checked first (the model's files, the formats, the
  output folder against what is read), so a wrong path fails in a fraction of a second.

  Args:
    model_path: a training workdir or a .keras file; None: the shipped model of `scale`.
    output_dir: the folder to write (see `export`).
    formats: names from `FORMATS`, or one comma-separated string.
    scale: the scale asked for: picks the shipped model when `model_path` is None (default 2)
      and is checked against the model's.
    check_dir: images to compare on (default: the run's validation folder, else its training
      images; a .keras file has none).
    check_count: how many check images to use.
    check_crop: centre-crop check images to at most this side (0: whole images).
    calibration_dir: images to calibrate full-integer int8 on (default: the run's training
      images, else the check images).
    overwrite: replace an earlier export at `output_dir`.
    log: receives one progress line per step.
    **options: model_name, version, max_int8_full_drop, serving, serving_base of `export`.

  Raises:
    ExportError (or another FGRNError) with one line naming the file or flag at fault.
  """
  with folders.reported():
    path = resolve.model_spec(model_path, scale)
    if isinstance(path, list):
      raise ExportError(f"--model {resolve.describe(path)}: an export is made from a training "
                        f"workdir or a .keras file")
    peeked = resolve.peek(path)
    if peeked is not None:
      resolve.check(path, *peeked, scale)
      if options.get("serving") is not None and peeked[1] is not None:  # before the loading
        options["serving"].check(*peeked)
    formats = parse_formats(formats)
    is_workdir = inputs.check_model_path(path)
    # Nothing that is read may be written over: the output is checked before any work is done.
    read = [("--model", path), ("--check_dir", check_dir), ("--calibration_dir", calibration_dir)]
    if is_workdir and not (check_dir and calibration_dir):
      read += [("run's image folder", d) for d in inputs.image_dirs(path)]
    folders.check_apart(output_dir, read, containers={"--model"} if is_workdir else ())
    folders.check_output_dir(output_dir, overwrite)

    model = inputs.load_trained(path)
    resolve.check(path, model.scale, model.model_config, scale)
    source = {"path": str(path.resolve()),
              "weights": weights_path(path).name if is_workdir else path.name}
    if check_dir:
      check_files = images.list_images(check_dir)
    elif is_workdir:
      check_files = inputs.default_image_files(path)
    else:
      raise ExportError("a .keras file carries no training images: pass --check_dir")
    check = inputs.load_check_images(check_files, model.scale, check_crop, check_count, log=log)
    calibration = None
    if any(tflite.VARIANTS[f].calibrate for f in formats if f in tflite.VARIANTS):
      files = (images.list_images(calibration_dir) if calibration_dir
               else inputs.default_image_files(path) if is_workdir else check_files)
      calibration = inputs.load_calibration_images(files, model.scale, log=log)
    return export(model, output_dir, check, formats=formats, calibration_images=calibration,
                  overwrite=overwrite, source=source, log=log, **options)


def export(model, output_dir, check_images: list[tuple[str, np.ndarray]],
           formats: Sequence[str] = DEFAULT_FORMATS, model_name: str | None = None,
           version: int = 1, calibration_images: list[np.ndarray] | None = None,
           max_int8_full_drop: float = agreement.DEFAULT_MAX_INT8_FULL_DROP_DB,
           overwrite: bool = False, source: dict | None = None,
           log: Callable[[str], None] = print, serving: ServingOptions | None = None,
           serving_base: str = server_config.DEFAULT_BASE) -> dict:
  """Writes the artifacts of `model` to `output_dir` and returns the manifest.

  Args:
    model: a trained `FGRN`.
    output_dir: the folder to create: missing, empty, or (with `overwrite`) an earlier
      export; anything else is refused (see `folders.check_output_dir`).
    check_images: (name, uint8 `[H, W, 3]`, H and W multiples of the scale) to compare on.
    formats: names from `FORMATS`; an empty sequence writes the manifest alone (a shipped
      model whose halves did not fit the repository: `shipper`).
    model_name: the TF Serving model name (default `fgrn_x<scale>`).
    version: the TF Serving version folder.
    calibration_images: uint8 `[H, W, 3]` training images for full-integer int8 (default:
      the check images).
    max_int8_full_drop: full-integer int8 is left out (recorded as skipped) when its round
      trip PSNR is more than this many dB below Keras's.
    overwrite: replace an earlier export at `output_dir`.
    source: what the model was loaded from, recorded in the manifest.
    log: receives one progress line per step.
    serving: the SavedModel's bytes signatures: tile, pixel cap, LR format (default
      ServingOptions()).
    serving_base: the folder TF Serving finds `<model_name>/` in, for models.config (default
      the container's /models).

  Raises:
    ExportError: bad arguments, an output folder it must not replace, an I/O error (naming
      the final path), an artifact with non-builtin ops, or one that disagrees with Keras
      (nothing is then left at, or removed from, `output_dir`).
  """
  formats = parse_formats(formats) if isinstance(formats, str) or formats else ()
  model_name = model_name or f"fgrn_x{model.scale}"
  output_dir = pathlib.Path(os.path.abspath(output_dir))
  folders.check_output_dir(output_dir, overwrite)
  if not check_images:
    raise ExportError("no check images: every artifact is compared with Keras on some")
  serving = serving or ServingOptions()
  serving.check(model.scale, model.model_config)
  try:
    serving_path = saved_model.serving_dir(".", model_name, version)
  except ValueError as e:
    raise ExportError(str(e)) from None

  def build(stage: pathlib.Path) -> dict:
    artifacts = _write_artifacts(stage, model, serving_path, formats, check_images,
                                 calibration_images, max_int8_full_drop, log,
                                 serving) if formats else {}
    if saved_model.FORMAT in formats:
      write_text(stage / server_config.MODELS_CONFIG,
                 server_config.models_config(model_name, serving_base))
      write_text(stage / server_config.BATCHING_PARAMETERS,
                 server_config.batching_parameters(model.scale, serving.max_pixels))
    m = manifest.describe(model, check_images, artifacts)
    m.update(model_name=model_name, version=int(version), source=source or {})
    manifest.write(stage, m)
    return m

  # Checked again before the swap: the folder may have changed while exporting.
  return folders.build_in_place(output_dir, build,
                                recheck=lambda: folders.check_output_dir(output_dir, overwrite))


def _write_artifacts(stage, model, serving, formats, check_images, calibration_images,
                     max_int8_full_drop, log, options: ServingOptions) -> dict:
  """Writes and checks every artifact of `formats` under `stage`; returns their entries."""
  scale = model.scale
  keras_backend = backends.KerasBackend(model)
  ref = agreement.reference(keras_backend, check_images)
  artifacts: dict[str, dict] = {}

  sm_dir = stage / serving
  if saved_model.FORMAT in formats:
    log(f"SavedModel -> {serving}")
    saved_model.write(model, sm_dir, serving=options)
    artifacts[saved_model.FORMAT] = {
        "path": serving.as_posix(), "bytes": _size(sm_dir),
        "signatures": {**{k: {"input": i, "output": o} for k, (i, o) in
                          {**backends.SIGNATURES, **backends.BYTES_SIGNATURES}.items()},
                       "serving_default": backends.SERVING_DEFAULT},
        "serving": options.describe(scale),
        "server_files": list(server_config.FILES),
        "agreement": agreement.agreement(backends.SavedModelBackend(sm_dir), check_images, ref,
                                         scale)}

  variants = [tflite.VARIANTS[name] for name in formats if name != saved_model.FORMAT]
  if variants:
    # Each .tflite is converted from the uint8 signatures of a SavedModel written without the
    # bytes ones: the converter loads every function of the SavedModel it is given (twice), and
    # the bytes signatures' loops hold 15 times as many, which would double each conversion.
    source = stage / TFLITE_SOURCE
    saved_model.write(model, source, serving=options, for_servers=False)
    calibration = calibration_images or [im for _, im in check_images]
    for variant in variants:
      artifacts[variant.name] = _tflite_artifact(stage, source, model, variant, keras_backend,
                                                 calibration, log)
      backend = backends.TFLiteBackend(*(stage / artifacts[variant.name]["files"][half]["path"]
                                         for half in ("downscale", "upscale")))
      artifacts[variant.name]["agreement"] = agreement.agreement(backend, check_images, ref,
                                                                 scale)
      del backend  # frees the interpreters before the next conversion
    shutil.rmtree(source)

  agreement.check_exact(artifacts)
  for name in agreement.quality_gate(artifacts, stage, max_int8_full_drop):
    log(f"{name}: {artifacts[name]['skipped']}")
  return artifacts


def _tflite_artifact(stage, sm_dir, model, variant: tflite.Variant, keras_backend, calibration,
                     log) -> dict:
  """Converts both halves of the SavedModel at `sm_dir` as `variant`; its manifest entry."""
  folder = pathlib.Path(tflite.TFLITE_DIR) / variant.folder
  info = {"scale": model.scale, "model_config": model.model_config.to_dict(),
          "objective": model.objective.to_dict()}
  files = {}
  for half, file_name in backends.TFLITE_FILES.items():
    log(f"{variant.name}: {file_name}")
    representative = None
    if variant.calibrate:
      representative = _representative(keras_backend, half, model.scale, calibration)
    try:
      content = tflite.convert(sm_dir, half, variant, representative)
    except FGRNError as e:  # tflite.ConversionError, or ops no interpreter runs
      raise ExportError(f"{variant.name}: converting {file_name} failed: {one_line(e)}") from None
    path = tflite.write(stage / folder / file_name, content,
                        {**info, "half": half, "format": variant.name})
    files[half] = {"path": (folder / file_name).as_posix(), "bytes": path.stat().st_size,
                   "ops": litert.ops(content),
                   # What would keep TFLite's GPU delegate from running it (empty: nothing).
                   "gpu_delegate_issues": gpu_delegate.issues(content)}
  return {"description": variant.description, "files": files,
          "bytes": sum(f["bytes"] for f in files.values())}


def _representative(keras_backend, half, scale, images):
  """Calibration inputs for one half: HR crops, or (upscaler) Keras's LR of those crops."""
  crops = tflite.representative_crops(images, scale)
  if half == "upscale":
    crops = [keras_backend.downscale(c) for c in crops]

  def gen():
    for c in crops:
      yield [c]

  return gen


def _size(path: pathlib.Path) -> int:
  if path.is_file():
    return path.stat().st_size
  return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
