"""Training FGRN (Li et al., BMVC 2021): strategy, optimizer, callbacks, resumable `fit`.

`train(experiment, workdir)` is the whole job behind `train_main.py`. A workdir holds one run
(layout in `fgrn_tf.workdir`); running the same command again continues it from its last
backup (weights, Adam state and step, hence the learning-rate schedule), or says it is complete.
Every file is written under a temporary name and renamed into place, so a run killed at any
moment loses at most the steps since its last backup and never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from fgrn_tf import workdir as wd
from fgrn_tf.config import Experiment
from fgrn_tf.data import pipeline
from fgrn_tf.data.imresize import bicubic_downscale
from fgrn_tf.models.fgrn import FGRN, psnr01
from fgrn_tf.models.quantize import quantize

STATE = "train_state.json"
BACKUP = "backup"
BACKUP_WEIGHTS = "latest.weights.h5"
TENSORBOARD = "tensorboard"
# Recipe fields that may change when a run is continued: its length and schedule (a run that
# turns out slower or faster than planned), moved data.
RESUMABLE_CHANGES = ("steps", "lr_halving_steps", "data_dirs", "val_dir")


class TrainError(RuntimeError):
  """Training cannot start or went wrong (one line, naming the cause and what to do)."""


# ---- configuration checks --------------------------------------------------------------------

def check_experiment(experiment: Experiment) -> None:
  """Raises TrainError (one line) for a recipe that cannot train."""
  m, t = experiment.model, experiment.train
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


def check_resumable(saved: Experiment, new: Experiment) -> list[str]:
  """Raises TrainError if `new` cannot continue a run made with `saved`; returns the
  allowed changes (as "field: old -> new") otherwise."""
  if saved.model != new.model:
    diff = [f"{f.name}: {getattr(saved.model, f.name)!r} -> {getattr(new.model, f.name)!r}"
            for f in dataclasses.fields(saved.model)
            if getattr(saved.model, f.name) != getattr(new.model, f.name)]
    raise TrainError(f"the workdir holds a different network ({'; '.join(diff)}); "
                     f"use a new --workdir")
  changes, blocked = [], []
  for f in dataclasses.fields(saved.train):
    old, value = getattr(saved.train, f.name), getattr(new.train, f.name)
    if old != value:
      (changes if f.name in RESUMABLE_CHANGES else blocked).append(f"{f.name}: {old!r} -> "
                                                                   f"{value!r}")
  if blocked:
    raise TrainError(f"the workdir was trained with a different recipe ({'; '.join(blocked)}); "
                     f"rerun with the same flags or use a new --workdir")
  return changes


# ---- strategy ----------------------------------------------------------------------------------

def choose_strategy(devices=None) -> tf.distribute.Strategy:
  """MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy over several GPUs
  (or the given devices), else the default one-device strategy.

  Call it before any other TensorFlow work: a multi-worker strategy must be created first.
  """
  if os.environ.get("TF_CONFIG"):
    return tf.distribute.MultiWorkerMirroredStrategy()
  if devices:
    return tf.distribute.MirroredStrategy(list(devices))
  if len(tf.config.list_logical_devices("GPU")) > 1:
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()


def worker_info(strategy) -> tuple[bool, int, int]:
  """(is_chief, worker_index, num_workers) of this process."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return True, 0, 1
  spec = resolver.cluster_spec().as_dict()
  workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
  task_type, task_id = resolver.task_type, resolver.task_id or 0
  has_chief = bool(spec.get("chief"))
  chief = (task_type == "chief") or (not has_chief and task_type == "worker" and task_id == 0)
  index = task_id + (1 if has_chief and task_type == "worker" else 0)
  return chief, index, workers


# ---- files ---------------------------------------------------------------------------------------

def _replace_into(tmp: pathlib.Path, final: pathlib.Path) -> None:
  with open(tmp, "rb") as f:
    os.fsync(f.fileno())
  os.replace(tmp, final)


def _naming_target(e: OSError, tmp: pathlib.Path, target: pathlib.Path) -> OSError:
  """`e` as the same kind of error about `target`: the user never saw the temporary name that
  the errno text (and h5py's message) carries."""
  if e.errno:
    return OSError(e.errno, os.strerror(e.errno), str(target))
  return OSError(f"{target}: {str(e).replace(str(tmp), str(target))}")


def _discard(tmp: pathlib.Path) -> None:
  with contextlib.suppress(OSError):  # an error here would hide the one being reported
    tmp.unlink(missing_ok=True)


def save_weights_atomic(model: keras.Model, path) -> None:
  """`model.save_weights` to a temporary name beside `path`, then renamed into place.

  Raises OSError naming `path` (not the temporary file) when it cannot be written."""
  path = pathlib.Path(path)
  tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # keeps the .weights.h5 suffix
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(tmp)
    _replace_into(tmp, path)
  except OSError as e:
    raise _naming_target(e, tmp, path) from None
  finally:
    _discard(tmp)


def write_json_atomic(path, data: dict) -> None:
  """JSON to a temporary name beside `path`, then renamed into place (OSError names `path`)."""
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    _replace_into(tmp, path)
  except OSError as e:
    raise _naming_target(e, tmp, path) from None
  finally:
    _discard(tmp)


def read_state(workdir) -> dict:
  path = pathlib.Path(workdir) / STATE
  if not path.is_file():
    return {}
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return {}


# ---- model and optimizer ---------------------------------------------------------------------

def learning_rate_schedule(train_cfg):
  """Adam's rate: `learning_rate` halved every `lr_halving_steps` steps (paper: 3e-4, 2e5)."""
  return keras.optimizers.schedules.ExponentialDecay(
      train_cfg.learning_rate, decay_steps=train_cfg.lr_halving_steps, decay_rate=0.5,
      staircase=True)


def build_model(experiment: Experiment, strategy) -> FGRN:
  """FGRN compiled with Adam + the halving schedule, its variables and Adam's slots built."""
  keras.utils.set_random_seed(experiment.train.seed)
  with strategy.scope():
    model = FGRN(experiment.model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(experiment.train)),
                  jit_compile=False)  # XLA: slower on CPU, fails on logical CPUs (TF-NOTES)
    model.optimizer.build(model.trainable_variables)
  return model


def current_step(model) -> int:
  return int(model.optimizer.iterations.numpy())


# ---- callbacks ---------------------------------------------------------------------------------

def _scalar(value) -> float:
  return float(np.mean(np.asarray(value)))


def _finite(logs) -> bool:
  return all(math.isfinite(_scalar(v)) for v in (logs or {}).values())


class Validation(keras.callbacks.Callback):
  """After each epoch: mean PSNR (RGB, dB) of the 8-bit round trip on the validation images
  (`val_psnr`) and of the LR image against MATLAB bicubic (`val_lr_psnr`), added to the logs."""

  def __init__(self, hr_images, scale: int):
    super().__init__()
    self.hr = [tf.constant(im[None], tf.float32) / 255.0 for im in hr_images]
    self.bic = [bicubic_downscale(h, scale) for h in self.hr]
    self.last = None  # (hr, lr, bic, sr) of the first image, for TensorBoard

  def set_model(self, model):
    super().set_model(model)

    @tf.function(reduce_retracing=True, autograph=False)  # no Python control flow to convert
    def roundtrip(hr):
      lr = model.downscale_float(hr)
      return lr, quantize(model.upscale_float(lr))

    self._roundtrip = roundtrip

  def evaluate(self) -> dict:
    psnr, lr_psnr = [], []
    for i, (hr, bic) in enumerate(zip(self.hr, self.bic, strict=True)):
      lr, sr = self._roundtrip(hr)
      psnr.append(float(psnr01(hr, sr)[0]))
      lr_psnr.append(float(psnr01(bic, lr)[0]))
      if i == 0:
        self.last = (hr, lr, tf.clip_by_value(bic, 0.0, 1.0), tf.clip_by_value(sr, 0.0, 1.0))
    return {"val_psnr": float(np.mean(psnr)), "val_lr_psnr": float(np.mean(lr_psnr))}

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and self.hr and _finite(logs):
      logs.update(self.evaluate())


class Checkpoints(keras.callbacks.Callback):
  """After each epoch: best/last weights (chief only, without optimizer state), then the backup
  (weights + Adam + step; each worker its own), then train_state.json. All atomic."""

  def __init__(self, workdir, experiment: Experiment, backup_path, chief: bool, state: dict,
               started: float):
    super().__init__()
    self.workdir = pathlib.Path(workdir)
    self.experiment = experiment
    self.backup_path = pathlib.Path(backup_path)
    self.chief = chief
    self.state = dict(state)
    self.started = started
    self.seconds_before = float(state.get("train_seconds", 0.0))
    self._plain = None

  def _save_plain(self, name: str):
    if self._plain is None:
      self._plain = FGRN(self.experiment.model)  # no optimizer: small files for inference
    self._plain.set_weights(self.model.get_weights())
    save_weights_atomic(self._plain, self.workdir / name)

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if not _finite(logs):
      return  # never overwrite good weights with diverged ones
    step = current_step(self.model)
    val = logs.get("val_psnr")
    best = self.state.get("best_val_psnr")
    if self.chief:
      if val is not None and (best is None or val > best):
        self._save_plain(wd.BEST_WEIGHTS)
        self.state.update(best_val_psnr=val, best_step=step)
      self._save_plain(wd.LAST_WEIGHTS)
    save_weights_atomic(self.model, self.backup_path)
    if self.chief:
      self.state.update(
          step=step, epoch=epoch + 1, last_val_psnr=val, last_val_lr_psnr=logs.get("val_lr_psnr"),
          train_seconds=self.seconds_before + time.time() - self.started,
          complete=step >= self.experiment.train.steps)
      write_json_atomic(self.workdir / STATE, self.state)


class Summaries(keras.callbacks.Callback):
  """TensorBoard: every log (loss terms, log-det, gradient norm, validation PSNRs) and the
  learning rate each epoch, and the first validation image's HR, LR from F, bicubic LR and
  reconstruction."""

  def __init__(self, logdir, validation: Validation | None):
    super().__init__()
    self.writer = tf.summary.create_file_writer(str(logdir))
    self.validation = validation

  def on_epoch_end(self, epoch, logs=None):
    step = current_step(self.model)
    opt = self.model.optimizer
    with self.writer.as_default(step=step):
      for name, value in (logs or {}).items():
        tag = name[4:] if name.startswith("val_") else name
        tf.summary.scalar(f"{'val' if name.startswith('val_') else 'train'}/{tag}",
                          _scalar(value))
      tf.summary.scalar("train/learning_rate", float(opt.learning_rate))
      if self.validation is not None and self.validation.last is not None:
        for tag, image in zip(("hr", "lr_from_flow", "lr_bicubic", "reconstruction"),
                              self.validation.last, strict=True):
          tf.summary.image(f"images/{tag}", image, max_outputs=1)
    self.writer.flush()


class Progress(keras.callbacks.Callback):
  """A one-line progress bar (step, steps/s, ETA, loss) and a line per epoch with validation.

  On a terminal the line is redrawn in place; in a log file a line is written every
  `every_seconds`.
  """

  def __init__(self, total_steps: int, stream=None, every_seconds: float = 60.0):
    super().__init__()
    self.total = total_steps
    self.stream = stream or sys.stdout
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self.every = every_seconds
    self.t0 = self.start_step = None
    self.last_print = 0.0

  def _print(self, text: str, end: str = "\n"):
    self.stream.write(("\r\033[K" if self.tty else "") + text + end)
    self.stream.flush()

  def _line(self, step: int, logs) -> str:
    done = step - self.start_step
    elapsed = time.time() - self.t0
    rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    width = 24
    filled = int(width * step / max(self.total, 1))
    loss = _scalar(logs["loss"]) if logs and "loss" in logs else float("nan")
    return (f"step {step}/{self.total} [{'=' * filled}{'.' * (width - filled)}] "
            f"{rate:.2f} steps/s  ETA {format_duration(eta)}  loss {loss:.4f}")

  def on_train_begin(self, logs=None):
    self.t0 = time.time()
    self.start_step = current_step(self.model)

  def on_train_batch_end(self, batch, logs=None):
    step = current_step(self.model)
    now = time.time()
    if self.tty or now - self.last_print >= self.every:
      self.last_print = now
      self._print(self._line(step, logs), end="" if self.tty else "\n")

  def on_epoch_end(self, epoch, logs=None):
    step = current_step(self.model)
    extra = ""
    if logs and "val_psnr" in logs:
      extra = (f"  val PSNR {logs['val_psnr']:.2f} dB  LR vs bicubic "
               f"{logs['val_lr_psnr']:.2f} dB")
    self._print(self._line(step, logs) + extra + "  (backed up)")


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# ---- the job -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Summary:
  """What a call to `train` did."""

  steps: int
  total_steps: int
  seconds: float  # this sitting
  total_seconds: float  # all sittings
  best_val_psnr: float | None
  best_step: int | None
  last_val_psnr: float | None
  already_complete: bool = False

  def text(self, workdir) -> str:
    def db(v):
      return "n/a" if v is None else f"{v:.2f} dB"

    head = ("already complete" if self.already_complete
            else f"finished: {self.steps}/{self.total_steps} steps in "
                 f"{format_duration(self.seconds)} (this run)")
    return (f"{head}; {format_duration(self.total_seconds)} of training in all; "
            f"validation PSNR last {db(self.last_val_psnr)}, best {db(self.best_val_psnr)} "
            f"(step {self.best_step}); weights in {workdir}")


def _summary_from_state(state: dict, total: int, seconds: float, done: bool) -> Summary:
  return Summary(steps=int(state.get("step", 0)), total_steps=total, seconds=seconds,
                 total_seconds=float(state.get("train_seconds", 0.0)),
                 best_val_psnr=state.get("best_val_psnr"), best_step=state.get("best_step"),
                 last_val_psnr=state.get("last_val_psnr"), already_complete=done)


def _data(experiment: Experiment):
  """(training ImageSet, validation HR arrays); DataError before any model is built."""
  t, scale = experiment.train, experiment.model.scale
  if t.data_dirs:
    files = pipeline.resolve_files(t.data_dirs)
    train_files, held = (files, []) if t.val_dir else pipeline.holdout_split(files, t.val_images)
  else:
    from fgrn_tf.data import defaults

    try:
      train_files, held = ((defaults.default_image_files(), []) if t.val_dir
                           else defaults.default_split(t.val_images))
    except FileNotFoundError as e:
      raise pipeline.DataError(str(e)) from None
  if t.val_dir:
    try:
      held = pipeline.images.list_images([t.val_dir])
    except pipeline.images.ImageError as e:
      raise pipeline.DataError(f"validation data: {e}") from None
  image_set = pipeline.load_images(train_files, t.patch_size)
  val, skipped = pipeline.validation_images(held, scale, t.val_crop)
  if held and not val:
    raise pipeline.DataError(f"none of the {len(held)} validation images is usable: {skipped[0]}")
  return image_set, val


def _os_error_text(e: OSError) -> str:
  reason = e.strerror or str(e)
  return f"{e.filename}: {reason}" if e.filename else reason


def train(experiment: Experiment, workdir, strategy=None, stream=None) -> Summary:
  """Trains (or continues training) `experiment` in `workdir`.

  Args:
    experiment: model and recipe (`config.preset(...)` with overrides).
    workdir: the run's folder; created if needed. If it holds a run of the same experiment,
      training continues from its last backup.
    strategy: a `tf.distribute.Strategy` (default: `choose_strategy()`).
    stream: where progress goes (default stdout).

  Returns:
    A Summary. Raises TrainError / pipeline.DataError (one-line messages) on bad input, a
    workdir another run holds, a file that cannot be written, or a loss that became NaN or
    infinite (the weights on disk stay the last good ones).
  """
  stream = stream or sys.stdout
  check_experiment(experiment)
  workdir = pathlib.Path(workdir)
  strategy = strategy or choose_strategy()
  chief, worker_index, _ = worker_info(strategy)
  # Workers of one cluster may share the workdir: the chief locks it (and everything only it
  # writes), each other worker locks only the backup it writes, so a second cluster or a
  # second plain run on the same workdir is refused while the first one's workers all run.
  lock_name = wd.LOCK if chief else f"train.worker{worker_index}.lock"
  try:
    with wd.lock(workdir, lock_name):
      return _train(experiment, workdir, strategy, chief, worker_index, stream)
  except wd.WorkdirBusyError as e:
    raise TrainError(str(e)) from None
  except OSError as e:
    state = read_state(workdir) if workdir.is_dir() else {}
    kept = f"; {workdir} keeps step {state['step']}" if state.get("step") else ""
    raise TrainError(f"{_os_error_text(e)}{kept}") from None


def _train(experiment: Experiment, workdir: pathlib.Path, strategy, chief: bool,
           worker_index: int, stream) -> Summary:
  t = experiment.train
  state = read_state(workdir)
  if (workdir / wd.CONFIG).is_file():
    try:
      saved = wd.read_experiment(workdir)
    except wd.WorkdirError as e:
      raise TrainError(f"{e}; use a new --workdir") from None
    changes = check_resumable(saved, experiment)
    if changes:
      print(f"continuing with changed settings: {'; '.join(changes)}", file=stream)
    if state.get("step", 0) >= t.steps:
      return _summary_from_state(state, t.steps, 0.0, True)

  if t.batch_size % strategy.num_replicas_in_sync:
    raise TrainError(f"batch size {t.batch_size} does not split over "
                     f"{strategy.num_replicas_in_sync} replicas")
  image_set, val_images = _data(experiment)
  print(image_set.summary() + f"; {len(val_images)} validation images", file=stream)

  if chief:
    wd.write_experiment(workdir, experiment)
    for stale in [*workdir.glob(".*.tmp"), *workdir.glob(".tmp-*"),
                  *(workdir / BACKUP).glob(".tmp-*")]:
      stale.unlink(missing_ok=True)  # left by a run killed while writing
  model = build_model(experiment, strategy)
  backup = workdir / BACKUP / (BACKUP_WEIGHTS if chief else f"worker{worker_index}.weights.h5")
  if backup.is_file():
    try:
      model.load_weights(backup)
    except Exception as e:  # noqa: BLE001 -- h5py/Keras messages name no file
      raise TrainError(f"{backup}: cannot resume from this backup ({wd.error_line(e)}); move "
                       "it away to restart from step 0, or use a new --workdir") from None
  start = current_step(model)
  if start % t.steps_per_epoch:
    raise TrainError(f"{backup}: step {start} is not at an epoch boundary; use a new --workdir")
  if start >= t.steps:
    return _summary_from_state(state, t.steps, 0.0, True)
  if start:
    print(f"resuming at step {start} (learning rate {float(model.optimizer.learning_rate):.3g})",
          file=stream)
  elif state:
    state = {}  # a state file without a backup belongs to an earlier, discarded run

  dataset = pipeline.training_dataset(image_set, experiment.model.scale, t.batch_size,
                                      t.patch_size, seed=t.seed, worker_index=worker_index,
                                      start_step=start)
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    # Keras 3 fit under MultiWorkerMirroredStrategy fails on structured batches (tuples,
    # dicts; TF-NOTES); HR alone works and train_step computes the same y_bic from it.
    dataset = dataset.map(lambda batch: batch["hr"])
  validation = Validation(val_images, experiment.model.scale) if val_images else None
  started = time.time()
  callbacks = [keras.callbacks.TerminateOnNaN(raise_error=True)]
  callbacks += [validation] if validation else []
  if chief:
    callbacks.append(Summaries(workdir / TENSORBOARD, validation))
  callbacks.append(Checkpoints(workdir, experiment, backup, chief, state, started))
  if chief:
    callbacks.append(Progress(t.steps, stream))
  try:
    model.fit(dataset, epochs=t.steps // t.steps_per_epoch, steps_per_epoch=t.steps_per_epoch,
              initial_epoch=start // t.steps_per_epoch, callbacks=callbacks, verbose=0,
              shuffle=False)
  except RuntimeError as e:
    if "NaN or Inf loss" not in str(e):
      raise
    raise TrainError(f"the loss became NaN or infinite near step {current_step(model)}; "
                     f"training stopped; {workdir} keeps the weights of step "
                     f"{read_state(workdir).get('step', 0)} (lower --learning_rate and rerun)"
                     ) from None
  return _summary_from_state(read_state(workdir) if chief else state, t.steps,
                             time.time() - started, False)
