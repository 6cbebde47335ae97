"""Trains FGRN (Li et al., BMVC 2021): `python train_main.py --preset quick --workdir runs/quick`.

Thin entry point: flags -> an `Experiment` (a preset with overrides) -> `train_lib.train`.
Running the same command again continues the run in --workdir from its last backup.
"""

from __future__ import annotations

import os
import sys

from fgrn_tf import tf_env  # noqa: E402

tf_env.set_defaults()

from absl import app, flags  # noqa: E402

from fgrn_tf import config  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "quick", sorted(config.PRESETS),
                            "Model and recipe to start from (config.py); flags below override it.")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Run folder (config, weights, backup, TensorBoard). Rerun the same "
                               "command to continue. Default: runs/<preset>.")
_DATA_DIRS = flags.DEFINE_list("data_dirs", None,
                               "Training image folders, comma-separated, searched recursively. "
                               "Default: the colour photos scikit-image ships.")
_VAL_DIR = flags.DEFINE_string("val_dir", None,
                               "Validation image folder. Default: hold --val_images out of the "
                               "training images.")
_VAL_IMAGES = flags.DEFINE_integer("val_images", None,
                                   "Images held out of the training set for validation.")
_VAL_CROP = flags.DEFINE_integer("val_crop", None,
                                 "Centre-crop validation images to this side (0 = whole images).")
_SCALE = flags.DEFINE_integer("scale", None, "Rescaling factor (keeps the preset's network).")
_GUIDANCE = flags.DEFINE_enum("guidance", None, list(config.GUIDANCE_MODES),
                              "flow (FGRN), bicubic (DU_bic) or none (DU_none): paper Table 3.")
_STEPS = flags.DEFINE_integer("steps", None, "Total optimizer steps.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Global batch size (split over replicas).")
_PATCH = flags.DEFINE_integer("patch_size", None, "HR patch side (a multiple of the scale).")
_LR = flags.DEFINE_float("learning_rate", None, "Adam's initial learning rate.")
_HALVING = flags.DEFINE_integer("lr_halving_steps", None,
                                "Halve the learning rate every this many steps.")
_EPOCH = flags.DEFINE_integer("steps_per_epoch", None,
                              "Steps between backups, validation and TensorBoard summaries.")
_SEED = flags.DEFINE_integer("seed", None, "Seed for weights, patches and augmentation.")
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels", None, "Refuse (skip) image files of more pixels than this. Default: "
    "$FGRN_MAX_PIXELS, else 2**27 (134 million).", lower_bound=1)


def experiment_from_flags() -> config.Experiment:
  exp = config.preset(_PRESET.value)
  model_changes = {k: v for k, v in (("scale", _SCALE.value), ("guidance", _GUIDANCE.value))
                   if v is not None}
  train_changes = {k: v for k, v in (
      ("steps", _STEPS.value), ("batch_size", _BATCH.value), ("patch_size", _PATCH.value),
      ("learning_rate", _LR.value), ("lr_halving_steps", _HALVING.value),
      ("steps_per_epoch", _EPOCH.value), ("seed", _SEED.value), ("val_images", _VAL_IMAGES.value),
      ("val_crop", _VAL_CROP.value)) if v is not None}
  if _DATA_DIRS.value is not None:
    train_changes["data_dirs"] = tuple(os.path.abspath(d) for d in _DATA_DIRS.value if d)
  if _VAL_DIR.value is not None:
    train_changes["val_dir"] = os.path.abspath(_VAL_DIR.value) if _VAL_DIR.value else ""
  return config.Experiment(exp.model.replace(**model_changes), exp.train.replace(**train_changes))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from fgrn_tf.data import images

  images.set_max_pixels(_MAX_PIXELS.value, flag="--max_pixels")  # before Keras imports cv2
  from fgrn_tf import train_lib
  from fgrn_tf.data.pipeline import DataError

  workdir = _WORKDIR.value or os.path.join("runs", _PRESET.value)
  try:
    experiment = experiment_from_flags()  # ValueError: a field out of range (e.g. --scale 1)
  except ValueError as e:
    print(f"train_main.py: error: {e}", file=sys.stderr)
    return 1
  try:
    train_lib.check_experiment(experiment)
    # The strategy before other TensorFlow work: a multi-worker one must come first.
    strategy = train_lib.choose_strategy()
    summary = train_lib.train(experiment, workdir, strategy=strategy)
  except (train_lib.TrainError, DataError) as e:
    print(f"train_main.py: error: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    step = train_lib.read_state(workdir).get("step", 0)
    print(f"\ninterrupted; rerun the same command to continue from step {step}", file=sys.stderr)
    return 130
  print(summary.text(workdir))
  return 0


if __name__ == "__main__":
  app.run(main)
