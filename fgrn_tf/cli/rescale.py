"""`fgrn` (`python -m fgrn_tf`): rescale image files with a trained FGRN, list the bundled
models, or count its parameters (docs/cli.md).

  fgrn downscale INPUT... -o OUTPUT_DIR [--model M] [--scale S] [--tile N] [--overwrite]
  fgrn upscale   INPUT... -o OUTPUT_DIR [--model M] [--scale S] [--tile N] [--overwrite]
  fgrn roundtrip INPUT... [-o OUTPUT_DIR] [--lr_dir DIR] [--nometrics] [--model M] ...
  (downscale, roundtrip: [--codec jpeg:90] or [--lr_format jpeg --quality 90])
  fgrn info [--scale 2|4] [--json]
  fgrn models [--json]
  fgrn --version

The command is the first argument, the inputs (files, folders, globs) the others; flags may
come anywhere. The work is in `fgrn_tf.rescale.commands`.
"""

from __future__ import annotations

from absl import flags

from fgrn_tf.cli import common_flags, entry
from fgrn_tf.errors import UsageError
from fgrn_tf.rescale.tiling import DEFAULT_TILE
from fgrn_tf.version import version

PROG = "fgrn"

_MODEL = common_flags.model()
_SCALE = common_flags.scale(also="info: the paper's preset, 2 or 4 (default 2).")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder for the results, named like their inputs (created if missing); "
    "roundtrip: the HR reconstructions.")
flags.DEFINE_alias("o", "output_dir")
_LR_DIR = flags.DEFINE_string("lr_dir", None, "roundtrip: also write the LR images here.")
_TILE = flags.DEFINE_integer(
    "tile", DEFAULT_TILE, "Largest piece of HR image, in pixels per side, the network sees at "
    "once (tiles overlap; the result does not change); 0: whole images.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace existing outputs (inputs are never replaced).")
_METRICS = flags.DEFINE_bool("metrics", True, "roundtrip: PSNR/SSIM of each image and the mean.")
_MAX_PIXELS = common_flags.max_pixels()
_JSON = flags.DEFINE_bool("json", False, "info, models: print one JSON object.")
_VERSION = flags.DEFINE_bool("version", False, "Print the version and exit.")
_CODEC = flags.DEFINE_string(
    "codec", None, "downscale, roundtrip: store the LR as png (default; lossless, records the HR "
    "size), jpeg:Q or webp:Q (Q in 1..100; OpenCV's encoders). roundtrip upscales the decoded "
    "LR, as whoever receives the file would.")
_LR_FORMAT = flags.DEFINE_enum(
    "lr_format", None, ["png", "jpeg", "webp"], "downscale, roundtrip: --codec given as a "
    "format and a --quality: `--lr_format jpeg --quality 90` is `--codec jpeg:90`.")
_QUALITY = flags.DEFINE_integer(
    "quality", None, "downscale, roundtrip: the JPEG or WebP quality of --lr_format, 1..100 "
    "(default 90).")

_PRECISION = common_flags.precision()

_RESCALE_FLAGS = ("model", "scale", "output_dir", "tile", "overwrite", "max_pixels",
                  "precision")
# The flags each command takes; any other given is refused, as a typo would be.
COMMAND_FLAGS = {
    "info": ("scale", "json"),
    "models": ("json",),
    "downscale": _RESCALE_FLAGS + ("codec", "lr_format", "quality"),
    "upscale": _RESCALE_FLAGS,
    "roundtrip": _RESCALE_FLAGS + ("lr_dir", "metrics", "codec", "lr_format", "quality"),
}
_HOLDERS = {"model": _MODEL, "scale": _SCALE, "output_dir": _OUTPUT_DIR, "lr_dir": _LR_DIR,
            "tile": _TILE, "overwrite": _OVERWRITE, "metrics": _METRICS,
            "max_pixels": _MAX_PIXELS, "json": _JSON, "codec": _CODEC,
            "precision": _PRECISION, "lr_format": _LR_FORMAT, "quality": _QUALITY}


def _command(argv: list[str]) -> tuple[str, list[str]]:
  """(command, inputs) from the arguments left after the flags; refuses flags it does not take."""
  if len(argv) < 2:
    raise UsageError(f"give a command: {', '.join(COMMAND_FLAGS)} (--help lists the flags)")
  command, inputs = argv[1], argv[2:]
  if command not in COMMAND_FLAGS:
    raise UsageError(f"unknown command {command!r}: use {', '.join(COMMAND_FLAGS)}")
  extra = [f"--{name}" for name, holder in _HOLDERS.items()
           if holder.present and name not in COMMAND_FLAGS[command]]
  if extra:
    raise UsageError(f"{command} takes no {', '.join(extra)}")
  if command in ("info", "models") and inputs:
    raise UsageError(f"{command} takes no inputs: {' '.join(inputs)}")
  return command, inputs


def _codec_spec() -> str | None:
  """--codec, or the spec that --lr_format and --quality spell; refuses both ways at once."""
  if not (_LR_FORMAT.present or _QUALITY.present):
    return _CODEC.value
  if _CODEC.present:
    raise UsageError("give --codec or --lr_format/--quality, not both")
  if _LR_FORMAT.value is None:
    raise UsageError("--quality needs --lr_format jpeg or webp")
  from fgrn_tf.data import codecs

  try:
    return codecs.from_format(_LR_FORMAT.value, _QUALITY.value).spec
  except codecs.CodecError as e:
    raise UsageError(f"--lr_format/--quality: {e}") from None


def _main(argv: list[str]) -> int:
  if _VERSION.value:
    print(f"{PROG} {version()}")
    return 0
  command, inputs = _command(argv)
  codec = _codec_spec()
  from fgrn_tf.data import images

  images.set_max_pixels(_MAX_PIXELS.value, flag="--max_pixels")  # before Keras imports cv2
  import cv2  # after fgrn_tf.data.images set OpenCV's pixel ceiling (read once, at import)

  cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our one line per bad file
  from fgrn_tf.rescale import commands

  if command == "info":
    return commands.info(2 if _SCALE.value is None else _SCALE.value, _JSON.value)
  if command == "models":
    return commands.models(_JSON.value)
  return commands.run(command, inputs, model=_MODEL.value, scale=_SCALE.value,
                         output_dir=_OUTPUT_DIR.value, lr_dir=_LR_DIR.value, tile=_TILE.value,
                         overwrite=_OVERWRITE.value, metrics=_METRICS.value,
                         codec=codec, precision=_PRECISION.value)


def main(argv=None) -> None:
  """Runs the tool (exits the process with its status)."""
  entry.run(PROG, _main, argv)


if __name__ == "__main__":
  main()
