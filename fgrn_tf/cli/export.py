"""`fgrn-export` (`python export/export_main.py`): a trained FGRN as a SavedModel for TF Serving,
.tflite halves for phones and a checked manifest.

Example:
  fgrn-export --model runs/x2 --output_dir exported/x2 \\
      [--formats savedmodel,tflite_float32,tflite_float16,tflite_int8,tflite_int8_full] \\
      [--model_name fgrn_x2] [--version 1] \\
      [--tile 1024] [--max_pixels 134217728] [--lr_format jpeg --quality 90]

See docs/serving.md for serving (the bytes signatures' --tile, --max_pixels, --lr_format) and
BUILD.md (Export and deployment) for running the .tflite files on phones.
"""

from __future__ import annotations

from absl import flags

from fgrn_tf.cli import common_flags, entry
from fgrn_tf.errors import UsageError
from fgrn_tf.export import (
  agreement,  # no TensorFlow: names for the flags' help
  bytes_signatures,
  exporter,
  server_config,
)
from fgrn_tf.rescale.tiling import DEFAULT_TILE

# The name errors and progress lines are printed under ("export: error: ...").
PROG = "export"

_MODEL = common_flags.model("a training workdir (config.json + best/last.weights.h5) or a "
                             ".keras file")
flags.DEFINE_alias("workdir", "model")  # the flag's earlier name, in scripts and model cards
_SCALE = common_flags.scale()
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder to create with manifest.json, <model_name>/<version>/ (the "
    "SavedModel) and tflite/<variant>/{downscaler,upscaler}.tflite.")
_FORMATS = flags.DEFINE_string(
    "formats", ",".join(exporter.DEFAULT_FORMATS),
    f"Comma-separated artifacts to write, from: {', '.join(exporter.FORMATS)}.")
_MODEL_NAME = flags.DEFINE_string(
    "model_name", None, "TF Serving model name (the SavedModel's folder); default fgrn_x<scale>.")
_VERSION = flags.DEFINE_integer("version", 1, "TF Serving version folder of the SavedModel.")
_CHECK_DIR, _CHECK_IMAGES = common_flags.check_images("every artifact against the Keras model")
_CHECK_CROP = flags.DEFINE_integer(
    "check_crop", 256, "Centre-crop check images to at most this side (0: whole images).")
_CALIBRATION_DIR = flags.DEFINE_string(
    "calibration_dir", None, "Training images to calibrate full-integer int8 on (default: the "
    "run's training images).")
_MAX_INT8_FULL_DROP = flags.DEFINE_float(
    "max_int8_full_drop", agreement.DEFAULT_MAX_INT8_FULL_DROP_DB,
    "Leave full-integer int8 out when its round trip PSNR is more than this many dB below "
    "the Keras model's.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace an --output_dir that holds an earlier export (and nothing else; "
    "a folder holding anything an export does not write is never replaced).")
_TILE = flags.DEFINE_integer(
    "tile", DEFAULT_TILE, "The SavedModel's bytes signatures: the largest piece of HR image, in "
    "pixels per side, the network sees at once (the served windows are fgrn's --tile windows).")
_MAX_PIXELS = common_flags.max_pixels(
    also="Also the SavedModel's bytes signatures' cap: they refuse an image of more HR pixels "
    "(a downscale's input, an upscale's output) with INVALID_ARGUMENT before decoding it.")
_LR_FORMAT = flags.DEFINE_enum(
    "lr_format", "png", list(bytes_signatures.LR_FORMATS),
    "What the SavedModel's downscale_bytes returns: png (lossless, records the HR size) or "
    "jpeg at --quality (a codec-aware model's natural output).")
_QUALITY = flags.DEFINE_integer("quality", None, "The JPEG quality of --lr_format jpeg, 1..100 "
                                "(default 90).")
_SERVING_BASE = flags.DEFINE_string(
    "serving_base", server_config.DEFAULT_BASE, "The folder TF Serving finds <model_name>/ in, "
    "written into models.config (the container's /models; a path on the host for the binary).")
flags.mark_flag_as_required("output_dir")


def _log(line: str) -> None:
  print(f"{PROG}: {line}", flush=True)


def _serving_options() -> bytes_signatures.ServingOptions:
  """The bytes signatures' options from --tile, --max_pixels, --lr_format and --quality."""
  from fgrn_tf.data import codecs, images

  images.set_max_pixels(_MAX_PIXELS.value, "--max_pixels")
  try:
    cap = images.max_pixels()
  except ValueError as e:
    raise UsageError(str(e)) from None
  if _QUALITY.value is not None and _LR_FORMAT.value != "jpeg":
    raise UsageError("--quality needs --lr_format jpeg")
  try:
    codec = codecs.from_format(_LR_FORMAT.value, _QUALITY.value)
  except codecs.CodecError as e:
    raise UsageError(f"--lr_format/--quality: {e}") from None
  return bytes_signatures.ServingOptions(tile=_TILE.value, max_pixels=cap, lr_codec=codec.spec)


def _main(argv: list[str]) -> int:
  from absl import logging

  from fgrn_tf.export import manifest

  logging.set_verbosity(logging.WARNING)  # TF's per-function INFO lines while saving
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  serving = _serving_options()
  written = exporter.export_path(
      _MODEL.value, _OUTPUT_DIR.value, _FORMATS.value, scale=_SCALE.value,
      check_dir=_CHECK_DIR.value, check_count=_CHECK_IMAGES.value, check_crop=_CHECK_CROP.value,
      calibration_dir=_CALIBRATION_DIR.value, overwrite=_OVERWRITE.value, log=_log,
      model_name=_MODEL_NAME.value, version=_VERSION.value,
      max_int8_full_drop=_MAX_INT8_FULL_DROP.value, serving=serving,
      serving_base=_SERVING_BASE.value)
  for line in manifest.summary(written):
    print(line)
  _log(f"wrote {_OUTPUT_DIR.value}")
  return 0


def main(argv=None) -> None:
  """Runs `fgrn-export` on `argv` (default: sys.argv) and exits with its status."""
  entry.run(PROG, _main, argv)
