"""Ships a trained run as the default model of the tools: `models/fgrn_x<scale>/`.

  python export/ship_main.py --workdir /root/fgrn-runs/cpu_x2 [--dest models/fgrn_x2]

Writes config.json, train_state.json, half-precision best weights and the float16 TFLite halves
(export/), after checking them against the run's float32 weights; see export/ship_lib.py. The
model card (MODEL_CARD.md) is written by hand from `eval_main.py`'s results.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from fgrn_tf import tf_env  # noqa: E402

tf_env.set_defaults()

from absl import app, flags, logging  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to ship (its best weights).")
_DEST = flags.DEFINE_string(
    "dest", None, "Folder to write; default models/fgrn_x<scale>. Replaced only when it is "
    "missing, empty or a model shipped there before (its MODEL_CARD.md is kept).")
_CHECK_DIR = flags.DEFINE_string(
    "check_dir", None, "Images to check the shipped files on (default: the run's validation "
    "folder, else its training images).")
_CHECK_IMAGES = flags.DEFINE_integer("check_images", 5, "How many check images to use.")


def main(argv):
  logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    sys.exit(f"ship: unexpected arguments {' '.join(argv[1:])}")
  try:
    from export import export_lib, ship_lib
    from fgrn_tf.data import images
    from fgrn_tf.inference import default_model_path
    from fgrn_tf.workdir import weights_path

    scale = export_lib.read_config(_WORKDIR.value).model.scale
    weights_path(_WORKDIR.value)
    dest = pathlib.Path(_DEST.value or default_model_path(scale))
    # What is read must not be what is replaced: checked before any work is done.
    inputs = [("--workdir", _WORKDIR.value), ("--check_dir", _CHECK_DIR.value)]
    if not _CHECK_DIR.value:
      inputs += [("run's image folder", d) for d in export_lib.image_dirs(_WORKDIR.value)]
    export_lib.check_apart(dest, inputs, flag="--dest")
    ship_lib.check_dest(dest)

    def log(line):
      print(f"ship: {line}", flush=True)

    files = (images.list_images(_CHECK_DIR.value) if _CHECK_DIR.value
             else export_lib.default_image_files(_WORKDIR.value))
    check = export_lib.load_check_images(files, scale, limit=_CHECK_IMAGES.value, log=log)
    ship_lib.ship(_WORKDIR.value, dest, check, log=log)
  except Exception as e:  # missing workdir or images, failed check, over the size limit
    text = str(e).strip()
    sys.exit(f"ship: error: {text.splitlines()[0] if text else type(e).__name__}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
