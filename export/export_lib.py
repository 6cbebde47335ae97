"""Exporting a trained FGRN for deployment: SavedModel, .tflite pairs, and a checked manifest.

Output folder (built beside the target and renamed into place, so a failed export leaves
nothing half written):
  manifest.json                     scale, sizes, ops, input constraints, agreement with Keras
  <model_name>/<version>/           SavedModel (TF Serving: --model_base_path=OUT/<model_name>)
  tflite/<variant>/downscaler.tflite, upscaler.tflite     variant: float32, float16, int8, ...

An existing output folder is replaced only when it is an export: its manifest.json has
`MANIFEST_FORMAT` and it holds nothing but the files above (`check_output_dir`). A training
workdir, a dataset or a folder of anything else is refused, whatever `overwrite` says.

Every artifact is run (SavedModel loaded back, .tflite files in the LiteRT interpreter) on a
check set and compared with the Keras model; SavedModel and float32 TFLite must agree within
`EXACT_LEVELS` everywhere or the export fails.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence

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
TFLITE_DIR = "tflite"
# What `keras.export.ExportArchive.write_out` puts in a SavedModel version folder.
SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "variables", "assets",
                                 "assets.extra"})
# Looking for images in a folder that is not an export only picks the message: stop early.
_IMAGE_SCAN_LIMIT = 10_000
# The hidden staging names of tempfile.mkdtemp/mkstemp here: ".<name>.<8 random>.<tmp|new|old>".
_STAGING_NAME = re.compile(r"/\.([^/\s'\"]+)\.[a-z0-9_]{8}\.(?:tmp|new|old)(?=$|[/\s'\":,;)])")


class ExportError(Exception):
  """The export cannot be made or failed its checks (one line for the user)."""


def current_umask() -> int:
  try:  # Linux >= 4.7 reports it without changing it (os.umask would, for a moment)
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
      if line.startswith("Umask:"):
        return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  umask = os.umask(0o022)
  os.umask(umask)
  return umask


def follow_umask(root) -> None:
  """Gives `root` and everything under it the modes a plain mkdir/open would: tempfile makes
  its folders and files owner-only, which would keep TF Serving's account out of an export."""
  umask = current_umask()
  root = pathlib.Path(root)
  os.chmod(root, 0o777 & ~umask)
  for folder, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(folder, name)
      if not os.path.islink(path):  # chmod would follow it out of the tree
        os.chmod(path, (0o777 if name in dirs else 0o666) & ~umask)


def staging_dir(target: pathlib.Path, suffix: str = ".tmp") -> pathlib.Path:
  """A new hidden folder beside `target` to build it in (then renamed onto it)."""
  target.parent.mkdir(parents=True, exist_ok=True)
  path = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=suffix,
                                       dir=target.parent))
  os.chmod(path, 0o777 & ~current_umask())
  return path


def public_error(e: BaseException, hidden: Mapping[pathlib.Path, pathlib.Path]) -> ExportError:
  """`e` as one line that names final paths instead of the hidden staging ones.

  `hidden` maps each staging folder to the folder it becomes. An OSError reads
  "<path>: <reason>" (e.g. "out/fgrn_x2/1/variables/...: No space left on device").
  """
  def public(text: str) -> str:
    for stage, real in hidden.items():
      text = text.replace(str(stage), str(real))
    return _STAGING_NAME.sub(r"/\1", text)  # staging inside staging (SavedModel, .tflite)

  if isinstance(e, OSError) and e.strerror:
    where = f"{public(os.fsdecode(e.filename))}: " if e.filename is not None else ""
    return ExportError(f"{where}{e.strerror}")
  return ExportError(public(_first_line(e)))


def _resolved(path) -> pathlib.Path:
  return pathlib.Path(os.path.abspath(path)).resolve()


def check_apart(output_dir, inputs: Iterable[tuple[str, object]],
                flag: str = "--output_dir") -> None:
  """Refuses an output folder that is one of `inputs` or holds one (ExportError, one line).

  Args:
    output_dir: the folder to be written.
    inputs: (how the user named it, path) of what is read ("--workdir", "--check_dir", ...);
      a name ending in "workdir" also refuses an output inside it. None paths are ignored.
    flag: how the user named `output_dir`.
  """
  out = _resolved(output_dir)
  for name, path in inputs:
    if path is None or str(path) == "":
      continue
    p = _resolved(path)
    if out == p:
      raise ExportError(f"{flag} {output_dir} is the {name} {path}: choose another folder")
    if out in p.parents:
      raise ExportError(f"{flag} {output_dir} holds the {name} {path}: choose another folder")
    if name.endswith("workdir") and p in out.parents:
      raise ExportError(f"{flag} {output_dir} is inside the {name} {path}: choose a folder "
                        f"outside it")


def _workdir_file(folder: pathlib.Path) -> str | None:
  from fgrn_tf.workdir import BEST_WEIGHTS, CONFIG, LAST_WEIGHTS

  return next((n for n in (CONFIG, BEST_WEIGHTS, LAST_WEIGHTS, "backup", "tensorboard")
               if (folder / n).exists()), None)


def an_image(folder: pathlib.Path) -> str | None:
  """An image file under `folder` (relative path), if one is among its first entries."""
  from fgrn_tf.data.images import IMAGE_EXTENSIONS

  for p in itertools.islice(folder.rglob("*"), _IMAGE_SCAN_LIMIT):
    if p.suffix.lower() in IMAGE_EXTENSIONS:
      return p.relative_to(folder).as_posix()
  return None


def _foreign(folder: pathlib.Path, manifest: dict) -> str | None:
  """The first path under an export folder that no export writes, or None."""
  from fgrn_tf.backends import MANIFEST, TFLITE_FILES

  model_name, version = manifest.get("model_name"), str(manifest.get("version"))
  variants = {v.folder for v in tflite.VARIANTS.values()}

  def plain(p: pathlib.Path, is_dir: bool) -> bool:
    return not p.is_symlink() and (p.is_dir() if is_dir else p.is_file())

  for entry in sorted(folder.iterdir()):
    if entry.name == MANIFEST and plain(entry, False):
      continue
    if entry.name == TFLITE_DIR and plain(entry, True):
      for variant in sorted(entry.iterdir()):
        if variant.name not in variants or not plain(variant, True):
          return variant.relative_to(folder).as_posix()
        for f in sorted(variant.iterdir()):
          if f.name not in TFLITE_FILES.values() or not plain(f, False):
            return f.relative_to(folder).as_posix()
      continue
    if isinstance(model_name, str) and entry.name == model_name and plain(entry, True):
      for v in sorted(entry.iterdir()):
        if v.name != version or not plain(v, True):
          return v.relative_to(folder).as_posix()
        for f in sorted(v.iterdir()):
          if f.name not in SAVED_MODEL_ENTRIES or f.is_symlink():
            return f.relative_to(folder).as_posix()
      continue
    return entry.relative_to(folder).as_posix()
  return None


def not_an_export(folder) -> str | None:
  """Why the non-empty `folder` is not an export this module wrote, or None when it is one."""
  from fgrn_tf.backends import MANIFEST

  folder = pathlib.Path(folder)
  found = _workdir_file(folder)
  if found:
    return f"holds a training workdir ({found})"
  path = folder / MANIFEST
  if not path.is_file():
    image = an_image(folder)
    if image:
      return f"holds images ({image})"
    return f"is not an export (no {MANIFEST})"
  try:
    manifest = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, ValueError):
    manifest = None
  if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
    return f"is not an export (its {MANIFEST} is not of format {MANIFEST_FORMAT})"
  foreign = _foreign(folder, manifest)
  if foreign:
    return f"holds {foreign}, which an export does not write"
  return None


def check_output_dir(output_dir, overwrite: bool = False) -> None:
  """Refuses an `output_dir` the export must not write to (ExportError, one line).

  A missing or empty folder is fine; an export made here before only with `overwrite`;
  anything else (a file, a link, a training workdir, images, other files) never.
  """
  out = pathlib.Path(output_dir)
  if out.is_symlink():
    raise ExportError(f"{out}: is a symbolic link; give the folder itself")
  if not out.exists():
    return
  if not out.is_dir():
    raise ExportError(f"{out}: exists and is not a folder")
  try:
    if not any(out.iterdir()):
      return
    reason = not_an_export(out)
  except OSError as e:
    raise public_error(e, {}) from None
  if reason:
    raise ExportError(f"{out}: exists and is not empty, and {reason}: it is not replaced; "
                      f"choose another output folder")
  if not overwrite:
    raise ExportError(f"{out}: holds a previous export (pass --overwrite to replace it)")


def replace_dir(stage: pathlib.Path, target: pathlib.Path) -> None:
  """Renames `stage` onto `target`; an existing `target` is moved aside first and deleted only
  once `stage` is in its place (restored if that rename fails)."""
  if not target.exists():
    stage.rename(target)
    return
  trash = staging_dir(target, ".old")
  try:
    target.rename(trash / target.name)
    try:
      stage.rename(target)
    except BaseException:
      (trash / target.name).rename(target)
      raise
  finally:
    shutil.rmtree(trash, ignore_errors=True)


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

  dirs = image_dirs(workdir)
  if dirs:
    return images.list_images(dirs)
  return defaults.default_image_files()


def image_dirs(workdir) -> list[str]:
  """The folders `default_image_files` reads: the run's validation folder, else its training
  folders, those present on this machine (none: the built-in photos are used)."""
  train = read_config(workdir).train
  if train.val_dir and pathlib.Path(train.val_dir).is_dir():
    return [train.val_dir]
  # A shipped model's recorded folders may not exist on this machine: the built-in photos then.
  return [d for d in train.data_dirs if pathlib.Path(d).is_dir()]


def read_config(workdir):
  """The workdir's `Experiment`; a config.json that does not parse names itself."""
  from fgrn_tf.workdir import CONFIG, read_experiment

  path = pathlib.Path(workdir) / CONFIG
  try:
    return read_experiment(workdir)
  except FileNotFoundError:
    raise
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    text = f"missing field {e}" if isinstance(e, KeyError) else _first_line(e)
    raise ExportError(text if str(path) in text else
                      f"{path}: not a valid training config: {text}") from None


def load_trained(path):
  """An FGRN from a training workdir or a .keras file; errors name the file at fault."""
  from fgrn_tf.workdir import load_model, weights_path

  path = pathlib.Path(path)
  if path.suffix == ".keras":
    what, file = "the model", path
  else:
    read_config(path)
    what, file = "the weights", weights_path(path)
  try:
    return load_model(path)
  except FileNotFoundError:
    raise
  except Exception as e:  # h5py/Keras errors do not name the file
    text = _first_line(e)
    raise ExportError(text if str(file) in text else
                      f"{file}: cannot load {what}: {text}") from None


def _read_images(files: Iterable, scale: int, what: str, limit: int,
                 log: Callable[[str], None] | None, prepare=lambda rgb: rgb) -> list:
  """(path, `prepare`d uint8 image) for the first `limit` files that decode and, once prepared,
  have sides of at least 2 * scale; others are skipped (and logged), as training skips them."""
  from fgrn_tf.data.images import read_rgb8

  files = list(files)
  out, first = [], None
  for path in files:
    if len(out) == limit:
      break
    try:
      rgb = prepare(read_rgb8(path))
    except (ValueError, OSError) as e:  # ImageError (a ValueError) names the file
      reason = str(e) if str(path) in str(e) else f"{path}: {_first_line(e)}"
    else:
      if min(rgb.shape[:2]) >= 2 * scale:
        out.append((path, np.ascontiguousarray(rgb)))
        continue
      reason = f"{path}: {rgb.shape[0]}x{rgb.shape[1]} is too small at x{scale}"
    first = first or reason
    if log:
      log(f"skipping {what} image {reason}")
  if not out:
    raise ExportError(f"no usable {what} images among {len(files)} file(s)"
                      + (f"; first: {first}" if first else ""))
  return out


def load_check_images(files: Sequence[str], scale: int, crop: int = 256, limit: int = 5,
                      log: Callable[[str], None] | None = None) -> list[tuple[str, np.ndarray]]:
  """(name, uint8 `[H, W, 3]`) for the first `limit` usable files: centre crops of at most
  `crop` pixels (0 = whole images), mod-cropped to the scale. Unreadable and too small files
  are skipped (told to `log`); ExportError when none is left."""
  from fgrn_tf.metrics.psnr_ssim import mod_crop

  def prepare(rgb):
    if crop:
      h, w = rgb.shape[:2]
      top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
      rgb = rgb[top:top + crop, left:left + crop]
    return mod_crop(rgb, scale)

  return [(pathlib.Path(p).name, rgb)
          for p, rgb in _read_images(files, scale, "check", limit, log, prepare)]


def load_calibration_images(files: Sequence[str], scale: int, limit: int = 32,
                            log: Callable[[str], None] | None = None) -> list[np.ndarray]:
  """uint8 `[H, W, 3]` of the first `limit` usable files, to calibrate full-integer int8 on;
  unreadable and too small files are skipped (told to `log`); ExportError when none is left."""
  return [rgb for _, rgb in _read_images(files, scale, "calibration", limit, log)]


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
    output_dir: the folder to create: missing, empty, or (with `overwrite`) an earlier
      export; anything else is refused (see `check_output_dir`).
    check_images: (name, uint8 `[H, W, 3]`, H and W multiples of the scale) to compare on.
    formats: names from `FORMATS`.
    model_name: the TF Serving model name (default `fgrn_x<scale>`).
    version: the TF Serving version folder.
    calibration_images: uint8 `[H, W, 3]` training images for full-integer int8 (default:
      the check images).
    max_int8_full_drop: full-integer int8 is left out (recorded as skipped) when its round
      trip PSNR is more than this many dB below Keras's.
    overwrite: replace an earlier export at `output_dir`.
    source: what the model was loaded from, recorded in the manifest.
    log: receives one progress line per step.

  Raises:
    ExportError: bad arguments, an output folder it must not replace, an I/O error (naming
      the final path), an artifact with non-builtin ops, or one that disagrees with Keras
      (nothing is then left at, or removed from, `output_dir`).
  """
  formats = parse_formats(formats)
  scale = model.scale
  model_name = model_name or f"fgrn_x{scale}"
  output_dir = pathlib.Path(os.path.abspath(output_dir))
  check_output_dir(output_dir, overwrite)
  if not check_images:
    raise ExportError("no check images: every artifact is compared with Keras on some")
  try:
    serving = saved_model.serving_dir(".", model_name, version)
  except ValueError as e:
    raise ExportError(str(e)) from None
  stage = None
  try:
    stage = staging_dir(output_dir)
    manifest = _export_into(stage, model, serving, formats, check_images, calibration_images,
                            max_int8_full_drop, log)
    manifest.update(model_name=model_name, version=int(version), source=source or {})
    text = json.dumps(_ordered(manifest), indent=2, allow_nan=False)
    (stage / backends.MANIFEST).write_text(text + "\n")
    follow_umask(stage)
    check_output_dir(output_dir, overwrite)  # again: it may have changed while exporting
    replace_dir(stage, output_dir)
  except (ExportError, OSError) as e:  # disk full, no permission: name the final path
    raise public_error(e, {stage: output_dir} if stage else {}) from None
  except Exception as e:
    if stage is not None and (str(stage) in str(e) or _STAGING_NAME.search(str(e))):
      raise public_error(e, {stage: output_dir}) from None  # TF's own I/O errors
    raise
  finally:
    if stage is not None:
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

