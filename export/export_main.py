"""Exports a trained FGRN: SavedModel for TF Serving, .tflite halves for phones, a manifest.

  python export/export_main.py --workdir runs/x2 --output_dir exported/x2 \
      [--formats savedmodel,tflite_float32,tflite_float16,tflite_int8,tflite_int8_full] \
      [--model_name fgrn_x2] [--version 1]

See BUILD.md (Export and deployment) for serving and for running the .tflite files on phones.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: `python export/export_main.py`
  sys.path.insert(0, str(ROOT))
from fgrn_tf import tf_env  # noqa: E402

tf_env.set_defaults()

from absl import app, flags, logging  # noqa: E402

from export import export_lib  # noqa: E402

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Training workdir (config.json + best/last.weights.h5) or a .keras file. "
    "Default: the shipped model of --scale, models/fgrn_x<scale>.")
_SCALE = flags.DEFINE_enum("scale", "2", ["2", "4"], "Which shipped model to export when no "
                           "--workdir is given.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder to create with manifest.json, <model_name>/<version>/ (the "
    "SavedModel) and tflite/<variant>/{downscaler,upscaler}.tflite.")
_FORMATS = flags.DEFINE_string(
    "formats", ",".join(export_lib.DEFAULT_FORMATS),
    f"Comma-separated artifacts to write, from: {', '.join(export_lib.FORMATS)}.")
_MODEL_NAME = flags.DEFINE_string(
    "model_name", None, "TF Serving model name (the SavedModel's folder); default fgrn_x<scale>.")
_VERSION = flags.DEFINE_integer("version", 1, "TF Serving version folder of the SavedModel.")
_CHECK_DIR = flags.DEFINE_string(
    "check_dir", None, "Images to compare every artifact with the Keras model on (default: the "
    "run's validation folder, else its training images).")
_CHECK_IMAGES = flags.DEFINE_integer("check_images", 5, "How many check images to use.")
_CHECK_CROP = flags.DEFINE_integer(
    "check_crop", 256, "Centre-crop check images to at most this side (0: whole images).")
_CALIBRATION_DIR = flags.DEFINE_string(
    "calibration_dir", None, "Training images to calibrate full-integer int8 on (default: the "
    "run's training images).")
_MAX_INT8_FULL_DROP = flags.DEFINE_float(
    "max_int8_full_drop", export_lib.DEFAULT_MAX_INT8_FULL_DROP_DB,
    "Leave full-integer int8 out when its round trip PSNR is more than this many dB below "
    "the Keras model's.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace an --output_dir that holds an earlier export (and nothing else; "
    "a folder holding anything an export does not write is never replaced).")


def run() -> dict:
  """Loads the model and images named by the flags and exports; returns the manifest."""
  from fgrn_tf.data import images
  from fgrn_tf.inference import default_model_path
  from fgrn_tf.workdir import ModelNotFoundError, weights_path

  workdir = pathlib.Path(_WORKDIR.value or default_model_path(int(_SCALE.value)))
  formats = export_lib.parse_formats(_FORMATS.value)
  is_workdir = workdir.is_dir()
  # Checked before TensorFlow is imported, so a wrong path fails in a fraction of a second.
  if is_workdir:
    export_lib.read_config(workdir)
    weights_path(workdir)
  elif workdir.suffix != ".keras" or not workdir.is_file():
    raise ModelNotFoundError(f"{workdir}: no such training workdir or .keras file")
  # Nothing that is read may be written over: the output is checked before any work is done.
  inputs = [("--workdir", workdir), ("--check_dir", _CHECK_DIR.value),
            ("--calibration_dir", _CALIBRATION_DIR.value)]
  if is_workdir and not (_CHECK_DIR.value and _CALIBRATION_DIR.value):
    inputs += [("run's image folder", d) for d in export_lib.image_dirs(workdir)]
  export_lib.check_apart(_OUTPUT_DIR.value, inputs)
  export_lib.check_output_dir(_OUTPUT_DIR.value, _OVERWRITE.value)

  def log(line):
    print(f"export: {line}", flush=True)

  model = export_lib.load_trained(workdir)
  source = {"path": str(workdir.resolve()),
            "weights": weights_path(workdir).name if is_workdir else workdir.name}
  if _CHECK_DIR.value:
    check_files = images.list_images(_CHECK_DIR.value)
  elif is_workdir:
    check_files = export_lib.default_image_files(workdir)
  else:
    raise export_lib.ExportError("a .keras file carries no training images: pass --check_dir")
  check = export_lib.load_check_images(check_files, model.scale, _CHECK_CROP.value,
                                       _CHECK_IMAGES.value, log=log)
  calibration = None
  if "tflite_int8_full" in formats:
    files = (images.list_images(_CALIBRATION_DIR.value) if _CALIBRATION_DIR.value
             else export_lib.default_image_files(workdir) if is_workdir else check_files)
    calibration = export_lib.load_calibration_images(files, model.scale, log=log)
  return export_lib.export(
      model, _OUTPUT_DIR.value, check, formats=formats, model_name=_MODEL_NAME.value,
      version=_VERSION.value, calibration_images=calibration,
      max_int8_full_drop=_MAX_INT8_FULL_DROP.value, overwrite=_OVERWRITE.value, source=source,
      log=log)


def main(argv):
  logging.set_verbosity(logging.WARNING)  # TF's per-function INFO lines while saving
  if len(argv) > 1:
    sys.exit(f"export: unexpected arguments {' '.join(argv[1:])}")
  try:
    manifest = run()
  except Exception as e:  # missing or corrupt workdir, bad images, failed checks: one line
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    sys.exit(f"export: error: {line}")
  for line in export_lib.summary(manifest):
    print(line)
  print(f"export: wrote {_OUTPUT_DIR.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["output_dir"])
  app.run(main)
