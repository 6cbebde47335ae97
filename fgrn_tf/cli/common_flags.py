"""The flags several tools share, each defined here once: one name, type, meaning and check.

A tool module calls these at import, as it defines its own flags (absl keeps one flag of a name
per process, and a process imports one tool module).
"""

from __future__ import annotations

from absl import flags

from fgrn_tf.config import PRECISIONS

ANY_MODEL = ("a training workdir, .keras file, export folder, SavedModel or .tflite file, a "
             ".tflite pair written down.tflite,up.tflite, or a bundled model's name (`fgrn "
             "models` lists them; a path that exists wins over a name)")
SHIPPED_DEFAULT = "Default: the bundled model of --scale, fgrn_x<scale>."


def model(kinds: str = ANY_MODEL, default: str | None = SHIPPED_DEFAULT) -> flags.FlagHolder:
  """--model: the model to use, of the `kinds` the tool takes."""
  return flags.DEFINE_string("model", None, f"The model: {kinds}." + (
      f" {default}" if default else ""))


def scale(default: int | None = None, also: str = "") -> flags.FlagHolder:
  """--scale: an integer everywhere (the library refuses one below 2 with its own words)."""
  said = "2" if default is None else str(default)
  return flags.DEFINE_integer(
      "scale", default, f"The scale asked for: picks the shipped model when no --model is given "
      f"(default {said}) and is checked against --model's.{' ' + also if also else ''}")


def max_pixels(also: str = "") -> flags.FlagHolder:
  """--max_pixels: the decoder's pixel ceiling (`fgrn_tf.data.images.set_max_pixels`)."""
  return flags.DEFINE_integer(
      "max_pixels", None, "Refuse (skip) image files of more pixels than this: the decoder "
      "holds a whole image in memory. Default: $FGRN_MAX_PIXELS, else 2**27 (134 million)."
      + (f" {also}" if also else ""), lower_bound=1)


def precision() -> flags.FlagHolder:
  """--precision: what a Keras model computes Gd and Gu in (`fgrn_tf.models.precision`)."""
  return flags.DEFINE_enum(
      "precision", "float32", PRECISIONS, "A Keras model (workdir or .keras): compute Gd's and "
      "Gu's convolutions in this precision (mixed_bfloat16: CPUs with AVX512-BF16 or AMX); F "
      "stays float32. An export computes as it was exported.")


def check_images(what: str) -> tuple[flags.FlagHolder, flags.FlagHolder]:
  """--check_dir and --check_images: the images `what` is checked on."""
  return (flags.DEFINE_string(
              "check_dir", None, f"Images to check {what} on (default: the run's validation "
              f"folder, else its training images, else the built-in photos)."),
          flags.DEFINE_integer("check_images", 5, "How many check images to use."))
