"""Whether a recipe can train or continue a workdir, answered before TensorFlow or JAX is imported.

`fgrn-train` checks the flags' recipe, its image folders and the workdir's run here first, so
that a mistake is one line, and a rerun of a finished run its summary, in a fraction of a second
rather than after the seconds it takes to import TF; the trainer checks the same again for
callers of the library.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

from fgrn_tf import workdir as wd
from fgrn_tf.config import BACKENDS, Experiment
from fgrn_tf.data import images, patches
from fgrn_tf.errors import FGRNError
from fgrn_tf.progress import format_duration

# Recipe fields that may change when a run is continued: its length and schedule (a run that
# turns out slower or faster than planned), moved data.
RESUMABLE_CHANGES = ("steps", "lr_halving_steps", "data_dirs", "val_dir")


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


def _differences(old, new) -> list[str]:
  return [f"{f.name}: {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}"
          for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]


def check_resumable(saved: Experiment, new: Experiment) -> list[str]:
  """Raises TrainError if `new` cannot continue a run made with `saved`; returns the
  allowed changes (as "field: old -> new") otherwise: the objective's, and the recipe's
  RESUMABLE_CHANGES. The network must stay the same."""
  if saved.model != new.model:
    raise TrainError(f"the workdir holds a different network "
                     f"({'; '.join(_differences(saved.model, new.model))}); use a new --workdir")
  recipe = _differences(saved.train, new.train)
  blocked = [c for c in recipe if c.split(":")[0] not in RESUMABLE_CHANGES]
  if blocked:
    raise TrainError(f"the workdir was trained with a different recipe ({'; '.join(blocked)}); "
                     f"rerun with the same flags or use a new --workdir")
  return recipe + _differences(saved.objective, new.objective)


def check_workdir(experiment: Experiment, workdir, backend: str, stream
                  ) -> tuple[bool, list[str]]:
  """Whether the run in `workdir` is complete, and what `experiment` (on the Keras `backend`)
  changes in it (printed to `stream`); TrainError when `experiment` cannot continue it."""
  workdir = pathlib.Path(workdir)
  if not (workdir / wd.CONFIG).is_file():
    return False, []
  try:
    saved = wd.read_experiment(workdir)
  except wd.WorkdirError as e:
    raise TrainError(f"{e}; use a new --workdir") from None
  changes = check_resumable(saved, experiment)
  started_on = wd.read_state(workdir).get("backend")
  if started_on and started_on != backend:
    changes.append(f"backend: {started_on} -> {backend}")
  if changes:
    print(f"continuing with changed settings: {'; '.join(changes)}", file=stream)
  return wd.read_state(workdir).get("step", 0) >= experiment.train.steps, changes


@dataclasses.dataclass
class Summary:
  """What a call to `trainer.train` did."""

  steps: int
  total_steps: int
  seconds: float  # this sitting
  total_seconds: float  # all sittings
  best_val_psnr: float | None
  best_step: int | None
  last_val_psnr: float | None
  already_complete: bool = False

  @classmethod
  def from_state(cls, state: dict, total: int, seconds: float, done: bool) -> Summary:
    return cls(steps=int(state.get("step", 0)), total_steps=total, seconds=seconds,
               total_seconds=float(state.get("train_seconds", 0.0)),
               best_val_psnr=state.get("best_val_psnr"), best_step=state.get("best_step"),
               last_val_psnr=state.get("last_val_psnr"), already_complete=done)

  def text(self, workdir) -> str:
    def db(v):
      return "n/a" if v is None else f"{v:.2f} dB"

    head = ("already complete" if self.already_complete
            else f"finished: {self.steps}/{self.total_steps} steps in "
                 f"{format_duration(self.seconds)} (this run)")
    return (f"{head}; {format_duration(self.total_seconds)} of training in all; "
            f"validation PSNR last {db(self.last_val_psnr)}, best {db(self.best_val_psnr)} "
            f"(step {self.best_step}); weights in {workdir}")
