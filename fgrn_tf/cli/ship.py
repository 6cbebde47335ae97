"""`fgrn-ship` (`python export/ship_main.py`): a trained run as the tools' default model,
`fgrn_tf/shipped_models/fgrn_x<scale>/` (package data: the wheel carries it).

Example:
  fgrn-ship --model runs/cpu_x2 [--output_dir fgrn_tf/shipped_models/fgrn_x2]

Writes config.json, train_state.json, half-precision best weights and the float16 TFLite halves
(export/), after checking them against the run's float32 weights (`fgrn_tf.export.shipper`).
The model card (MODEL_CARD.md) is written afterwards from `fgrn-eval`'s results
(`fgrn_tf.cli.model_card`).
"""

from __future__ import annotations

from absl import flags

from fgrn_tf.cli import common_flags, entry
from fgrn_tf.errors import UsageError

# The name errors and progress lines are printed under ("ship: error: ...").
PROG = "ship"

_WORKDIR = common_flags.model("the training workdir to ship (its best weights)", default=None)
_DEST = flags.DEFINE_string(
    "output_dir", None, "Folder to write; default the bundled fgrn_x<scale> (in the package: "
    "fgrn_tf/shipped_models/ of a checkout). Replaced only when it "
    "is missing, empty or a model shipped there before (its MODEL_CARD.md is kept).")
# The spellings of the first release, kept so that existing scripts and model cards still run.
flags.DEFINE_alias("workdir", "model")
flags.DEFINE_alias("dest", "output_dir")
_CHECK_DIR, _CHECK_IMAGES = common_flags.check_images("the shipped files")
_FORMATS = flags.DEFINE_string(
    "formats", "tflite_float16", "TFLite halves to ship beside the weights (fgrn-export's "
    "names), e.g. tflite_float16,tflite_int8_mixed for a phone-sized model; none: the "
    "weights alone.")
flags.mark_flag_as_required("model")


def _log(line: str) -> None:
  print(f"{PROG}: {line}", flush=True)


def _main(argv: list[str]) -> int:
  from absl import logging

  from fgrn_tf.export import shipper

  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  shipper.ship_path(_WORKDIR.value, _DEST.value, _CHECK_DIR.value, _CHECK_IMAGES.value,
                     log=_log, formats=_FORMATS.value)
  return 0


def main(argv=None) -> None:
  """Runs `fgrn-ship` on `argv` (default: sys.argv) and exits with its status."""
  entry.run(PROG, _main, argv)
