"""`python export/model_card.py`: writes MODEL_CARD.md for a shipped model from its files and
`fgrn-eval` results.

Example:
  python export/model_card.py --model fgrn_x2 \\
      --eval keras=results/x2,tflite_float16=results/x2_fp16,tflite_int8=results/x2_int8

Each `--eval` entry is `label=folder`, a folder written by `fgrn-eval` (its results.json) on
the model as shipped (Keras), or on one of its TFLite exports; the bicubic rows come from the
first entry evaluated with `--method fgrn,bicubic`. Numbers are copied, never retyped.
"""

from __future__ import annotations

from absl import flags

from fgrn_tf.cli import common_flags, entry
from fgrn_tf.errors import UsageError

PROG = "model_card"

_MODEL = common_flags.model("a shipped model's folder, or a bundled model's name", default=None)
_EVAL = flags.DEFINE_string("eval", None, "label=folder,... of fgrn-eval output folders.")
_COMMANDS = flags.DEFINE_string(
    "commands", None, "A file with the commands that made the numbers (copied verbatim).")
_CROPS = flags.DEFINE_list(
    "crops", None, "HR images whose LR the card shows at 1:1 beside bicubic's (written to "
    "the model's card/ folder).")
flags.mark_flags_as_required(["model", "eval"])


def _main(argv: list[str]) -> int:
  from fgrn_tf.export import model_card
  from fgrn_tf.runtime import resolve

  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  model = resolve.model_spec(_MODEL.value)
  if isinstance(model, list):
    raise UsageError(f"--model {resolve.describe(model)}: give a shipped model's folder")
  path = model_card.write_card(model, _EVAL.value, _COMMANDS.value, _CROPS.value)
  print(f"wrote {path}")
  return 0


def main(argv=None) -> None:
  """Runs the model card tool on `argv` (default: sys.argv) and exits with its status."""
  entry.run(PROG, _main, argv)
