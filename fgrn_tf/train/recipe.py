"""Whether a recipe can train, answered before TensorFlow or JAX is imported.

`fgrn-train` checks the flags' recipe and its image folders here first, so that a mistake is
one line in a fraction of a second rather than after the seconds it takes to import TF; the
trainer checks the same again for callers of the library.
"""

from __future__ import annotations

import math

from fgrn_tf.config import BACKENDS, Experiment
from fgrn_tf.data import images, patches
from fgrn_tf.errors import FGRNError


class TrainError(FGRNError, RuntimeError):
  """Training cannot start or went wrong (one line, naming the cause and what to do)."""


def check(experiment: Experiment, backend: str) -> None:
  """Raises TrainError (one line) for a recipe that cannot train on the Keras `backend`."""
  m, t = experiment.model, experiment.train
  if backend not in BACKENDS:
    raise TrainError(f"FGRN trains on the {' or '.join(BACKENDS)} Keras backend, not {backend}")
  if backend == "jax" and t.precision == "mixed_float16":
    raise TrainError("mixed_float16 (dynamic loss scaling) is for TensorFlow on NVIDIA GPUs; on "
                     "JAX use --precision mixed_bfloat16")
  if t.patch_size % m.scale:
    raise TrainError(f"patch size {t.patch_size} is not a multiple of the scale {m.scale} "
                     f"(try {t.patch_size - t.patch_size % m.scale or m.scale})")
  if t.patch_size < 4 * m.scale:
    raise TrainError(f"patch size {t.patch_size} is too small for scale {m.scale} "
                     f"(at least {4 * m.scale})")
  for name in ("batch_size", "steps", "steps_per_epoch", "lr_halving_steps"):
    if getattr(t, name) < 1:
      raise TrainError(f"{name} must be >= 1, got {getattr(t, name)}")
  if t.steps % t.steps_per_epoch:
    raise TrainError(f"steps ({t.steps}) must be a multiple of steps_per_epoch "
                     f"({t.steps_per_epoch}), the interval of backups and validation")
  if not (t.learning_rate > 0 and math.isfinite(t.learning_rate)):
    raise TrainError(f"learning rate must be a positive number, got {t.learning_rate}")
  if t.val_images < 0 or t.val_crop < 0 or t.seed < 0:
    raise TrainError("val_images, val_crop and seed must be >= 0")


def check_folders(experiment: Experiment) -> None:
  """Raises DataError (one line) for a training or validation folder that is missing or holds
  no images (lists them; reads none)."""
  train = experiment.train
  if train.data_dirs:
    patches.resolve_files(train.data_dirs)
  if train.val_dir:
    try:
      images.list_images([train.val_dir])
    except images.ImageError as e:
      raise patches.DataError(f"validation data: {e}") from None
