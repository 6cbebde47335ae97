"""Training FGRN (Li et al., BMVC 2021): recipe checks, optimizer, and the resumable `fit`.

`train(experiment, workdir)` is the whole job behind `fgrn-train` / `train_main.py`. A workdir
holds one run (layout in `fgrn_tf.workdir`); running the same command again continues it from
its last backup (weights, Adam state and step, hence the learning-rate schedule), or says it is
complete. Every file is written through `fgrn_tf.files` (a temporary name renamed into place),
so a run killed at any moment loses at most the steps since its last backup and never leaves a
partial file. The strategy is `fgrn_tf.distribute`'s, the callbacks `fgrn_tf.train.callbacks`'.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import time

import keras
from keras import ops

from fgrn_tf import distribute, files
from fgrn_tf import workdir as wd
from fgrn_tf.config import Experiment
from fgrn_tf.data import patches
from fgrn_tf.errors import one_line
from fgrn_tf.models import jpeg, precision, steps
from fgrn_tf.models.fgrn import FGRN
from fgrn_tf.runtime import shipped
from fgrn_tf.train import callbacks as cb
from fgrn_tf.train import recipe
from fgrn_tf.train.recipe import Summary, TrainError

if keras.backend.backend() == "tensorflow":  # tf.data: TensorFlow's input pipeline only
  from fgrn_tf.data import pipeline

# ---- configuration checks --------------------------------------------------------------------

def check_experiment(experiment: Experiment) -> None:
  """Raises TrainError (one line) for a recipe that cannot train (on this Keras backend)."""
  recipe.check(experiment, keras.backend.backend())


# ---- model and optimizer ---------------------------------------------------------------------

def learning_rate_schedule(train_cfg):
  """Adam's rate: `learning_rate` halved every `lr_halving_steps` steps (paper: 3e-4, 2e5)."""
  return keras.optimizers.schedules.ExponentialDecay(
      train_cfg.learning_rate, decay_steps=train_cfg.lr_halving_steps, decay_rate=0.5,
      staircase=True)


def build_model(experiment: Experiment, strategy=None) -> FGRN:
  """FGRN compiled with Adam + the halving schedule, its variables and Adam's slots built
  (under `strategy`'s scope on TensorFlow)."""
  keras.utils.set_random_seed(experiment.train.seed)
  jax = keras.backend.backend() == "jax"
  if jax and experiment.objective.trains_through_codec:
    jpeg.require_float64()  # the codec's exact track; before any array is made
  with strategy.scope() if strategy is not None else contextlib.nullcontext():
    model = FGRN(experiment.model, precision=experiment.train.precision,
                 objective=experiment.objective)
    adam = steps.Adam(learning_rate_schedule(experiment.train))
    # TensorFlow without XLA: slower on CPU, fails on logical CPUs (docs/tf_notes.md,
    # Training). JAX always compiles its step (op by op it would crawl).
    model.compile(optimizer=precision.optimizer(adam, experiment.train.precision),
                  jit_compile=jax)
    model.optimizer.build(model.trainable_variables)
  return model


# ---- the job -----------------------------------------------------------------------------------

def _os_error_text(e: OSError) -> str:
  reason = e.strerror or str(e)
  return f"{e.filename}: {reason}" if e.filename else reason


def train(experiment: Experiment, workdir, strategy=None, stream=None,
          time_limit_s: float | None = None) -> Summary:
  """Trains (or continues training) `experiment` in `workdir`.

  Args:
    experiment: model and recipe (`config.preset(...)` with overrides).
    workdir: the run's folder; created if needed. If it holds a run of the same experiment,
      training continues from its last backup.
    strategy: on TensorFlow a `tf.distribute.Strategy` (default:
      `distribute.choose_strategy()`); on JAX unused: every device takes a share of the batch
      (`distribute.jax_data_parallel`).
    stream: where progress goes (default stdout).
    time_limit_s: stop at the last epoch end that this sitting reaches within it (a run on a
      lent machine); rerunning continues from there.

  Returns:
    A Summary. Raises TrainError / patches.DataError (one-line messages) on bad input, a
    workdir another run holds, a file that cannot be written, or a loss that became NaN or
    infinite (the weights on disk stay the last good ones).
  """
  stream = stream or sys.stdout
  check_experiment(experiment)
  workdir = pathlib.Path(workdir)
  if keras.backend.backend() == "jax":
    strategy, replicas = None, distribute.jax_data_parallel()
    chief, worker_index, _ = distribute.jax_worker_info()
  else:
    strategy = strategy or distribute.choose_strategy()
    replicas = strategy.num_replicas_in_sync
    chief, worker_index, _ = distribute.worker_info(strategy)
  # Workers of one cluster may share the workdir: the chief locks it (and everything only it
  # writes), each other worker locks only the backup it writes, so a second cluster or a
  # second plain run on the same workdir is refused while the first one's workers all run.
  lock_name = wd.LOCK if chief else f"train.worker{worker_index}.lock"
  try:
    with wd.lock(workdir, lock_name):
      return _train(experiment, workdir, strategy, replicas, chief, worker_index, stream,
                    time_limit_s)
  except wd.WorkdirBusyError as e:
    raise TrainError(str(e)) from None
  except OSError as e:
    state = wd.read_state(workdir) if workdir.is_dir() else {}
    kept = f"; {workdir} keeps step {state['step']}" if state.get("step") else ""
    raise TrainError(f"{_os_error_text(e)}{kept}") from None


def _resume(model: FGRN, backup: pathlib.Path, steps_per_epoch: int) -> int:
  """Loads the backup when there is one; returns the step it continues from."""
  if backup.is_file():
    try:
      model.load_weights(backup)
    except wd.LOAD_ERRORS as e:  # h5py/Keras messages name no file
      raise TrainError(f"{backup}: cannot resume from this backup ({one_line(e)}); move "
                       "it away to restart from step 0, or use a new --workdir") from None
  start = cb.current_step(model)
  if start % steps_per_epoch:
    raise TrainError(f"{backup}: step {start} is not at an epoch boundary; use a new --workdir")
  return start


def _init_weights(model: FGRN, init_from: str) -> pathlib.Path:
  """Copies the weights of a trained model of the same network into `model` (fine-tuning).

  Returns the folder they came from; TrainError when it is missing or another network."""
  scale = model.model_config.scale
  path = shipped.default_model_path(scale) if init_from == "shipped" else pathlib.Path(init_from)
  try:
    source = wd.load_model(path)
  except (wd.WorkdirError, wd.ModelNotFoundError, OSError) as e:
    raise TrainError(f"--init_from {path}: {one_line(e)}") from None
  mine, theirs = model.model_config, source.model_config
  shape = ("scale", "width", "down_blocks", "up_blocks", "flow_cells", "flow_growth", "guidance")
  differ = [f for f in shape if getattr(mine, f) != getattr(theirs, f)]
  if differ:
    raise TrainError(f"--init_from {path}: another network ({', '.join(differ)} differ)")
  for mine_v, theirs_v in zip(model.weights, source.weights, strict=True):
    mine_v.assign(ops.cast(theirs_v, mine_v.dtype))  # shipped weights are stored in float16
  return path


def _train(experiment: Experiment, workdir: pathlib.Path, strategy, replicas: int, chief: bool,
           worker_index: int, stream, time_limit_s: float | None = None) -> Summary:
  t = experiment.train
  state = wd.read_state(workdir)
  complete, changes = recipe.check_workdir(experiment, workdir, keras.backend.backend(), stream)
  if complete:
    return Summary.from_state(state, t.steps, 0.0, True)
  if t.batch_size % replicas:
    raise TrainError(f"batch size {t.batch_size} does not split over {replicas} replicas")
  image_set, val_images = patches.load_training_and_validation(t, experiment.model.scale)
  print(image_set.summary() + f"; {len(val_images)} validation images", file=stream)

  backup = wd.backup_path(workdir, chief, worker_index)
  own = [backup] + ([workdir / n for n in (wd.CONFIG, wd.STATE, wd.BEST_WEIGHTS,
                                           wd.LAST_WEIGHTS)] if chief else [])
  for stale in [tmp for target in own for tmp in files.stale_temps(target)]:
    stale.unlink(missing_ok=True)  # left by a run killed while writing
  if chief:
    wd.write_experiment(workdir, experiment)
  model = build_model(experiment, strategy)
  start = _resume(model, backup, t.steps_per_epoch)
  if not start and t.init_from:
    print(f"starting from the weights of {_init_weights(model, t.init_from)}", file=stream)
  if start >= t.steps:
    return Summary.from_state(state, t.steps, 0.0, True)
  if start:
    print(f"resuming at step {start} (learning rate {float(model.optimizer.learning_rate):.3g})",
          file=stream)
    if chief and changes:  # config.json holds the new settings; the history says from when
      wd.append_history(workdir, {"step": start, "changed": changes})
  elif state:
    state = {}  # a state file without a backup belongs to an earlier, discarded run

  stream_of = (pipeline.training_dataset if strategy is not None else patches.numpy_batches)
  dataset = stream_of(image_set, experiment.model.scale, t.batch_size, t.patch_size, seed=t.seed,
                      worker_index=worker_index, start_step=start)
  if strategy is None:
    dataset = ((batch,) for batch in dataset)  # Keras takes a generator of (x,) tuples
  validation = cb.Validation(val_images) if val_images else None
  started = time.time()
  callbacks = [keras.callbacks.TerminateOnNaN(raise_error=True)]
  callbacks += [validation] if validation else []
  if chief and strategy is not None:  # TensorBoard's writer needs TensorFlow
    callbacks.append(cb.Summaries(workdir / wd.TENSORBOARD, validation))
  callbacks.append(cb.Checkpoints(workdir, experiment, backup, chief, state, started))
  if chief:
    callbacks.append(cb.TrainProgress(t.steps, stream))
  if time_limit_s is not None:
    callbacks.append(cb.TimeLimit(started + time_limit_s))
  try:
    model.fit(dataset, epochs=t.steps // t.steps_per_epoch, steps_per_epoch=t.steps_per_epoch,
              initial_epoch=start // t.steps_per_epoch, callbacks=callbacks, verbose=0,
              shuffle=False)
  except RuntimeError as e:
    if "NaN or Inf loss" not in str(e):
      raise
    raise TrainError(f"the loss became NaN or infinite near step {cb.current_step(model)}; "
                     f"training stopped; {workdir} keeps the weights of step "
                     f"{wd.read_state(workdir).get('step', 0)} (lower --learning_rate and rerun)"
                     ) from None
  return Summary.from_state(wd.read_state(workdir) if chief else state, t.steps,
                            time.time() - started, False)
