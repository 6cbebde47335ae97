"""The Keras callbacks of an FGRN training run (Li et al., BMVC 2021): validation, backups, the
history log, TensorBoard (TensorFlow) and the progress line, each run after every epoch
(`steps_per_epoch` steps), on every backend (Keras' JAX trainer puts the trained state back into
the model's variables before the epoch's callbacks)."""

from __future__ import annotations

import math
import pathlib
import time

import keras
import numpy as np
from keras import ops

from fgrn_tf import files
from fgrn_tf import workdir as wd
from fgrn_tf.config import Experiment
from fgrn_tf.models.fgrn import FGRN
from fgrn_tf.progress import Progress, format_duration


def current_step(model) -> int:
  return int(ops.convert_to_numpy(model.optimizer.iterations))


def save_weights(model: keras.Model, path) -> None:
  """`model.save_weights` atomically; OSError names `path`, never the temporary file."""
  files.write_with(path, model.save_weights)


def _scalar(value) -> float:
  return float(np.mean(np.asarray(value)))


def _finite(logs) -> bool:
  return all(math.isfinite(_scalar(v)) for v in (logs or {}).values())


class Validation(keras.callbacks.Callback):
  """After each epoch: mean PSNR (RGB, dB) of the 8-bit round trip on the validation images
  (`val_psnr`) and of the LR image against MATLAB bicubic (`val_lr_psnr`), added to the logs.

  The numbers are `FGRN.test_roundtrip`'s, the one definition of the test-time round trip.
  """

  def __init__(self, hr_images):
    super().__init__()
    self.hr = [ops.convert_to_tensor(im[None].astype(np.float32) / 255.0) for im in hr_images]
    self.bic = None  # the guidance targets, once the model (hence the scale) is known
    self.last = None  # (hr, lr, bic, sr) of the first image, for TensorBoard

  def set_model(self, model):
    super().set_model(model)
    self.bic = [model.guidance_target(h) for h in self.hr]
    self._roundtrip = model.test_roundtrip
    if keras.backend.backend() == "tensorflow":
      import tensorflow as tf  # loaded already by the backend

      # No Python control flow to convert; one trace per image size. (On JAX the model runs
      # eagerly here: a jitted function would keep the weights it was traced with.)
      self._roundtrip = tf.function(model.test_roundtrip, reduce_retracing=True,
                                    autograph=False)

  def evaluate(self) -> dict:
    psnr, lr_psnr, jpeg = [], [], []
    for i, (hr, bic) in enumerate(zip(self.hr, self.bic, strict=True)):
      out = self._roundtrip(hr, bic)
      psnr.append(float(out["psnr"][0]))
      lr_psnr.append(float(out["lr_psnr"][0]))
      if "psnr_jpeg" in out:
        jpeg.append(float(out["psnr_jpeg"][0]))
      if i == 0:
        self.last = (hr, out["lr"], ops.clip(bic, 0.0, 1.0), ops.clip(out["sr"], 0.0, 1.0))
    logs = {"val_psnr": float(np.mean(psnr)), "val_lr_psnr": float(np.mean(lr_psnr))}
    if jpeg:
      logs["val_psnr_jpeg"] = float(np.mean(jpeg))
    return logs

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and self.hr and _finite(logs):
      logs.update(self.evaluate())


class Checkpoints(keras.callbacks.Callback):
  """After each epoch: best/last weights (chief only, without optimizer state), then the backup
  (weights + Adam + step; each worker its own), then train_state.json (all atomic), and a line
  of the epoch's figures appended to history.jsonl (the chief's)."""

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
    save_weights(self._plain, self.workdir / name)

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if not _finite(logs):
      return  # never overwrite good weights with diverged ones
    step = current_step(self.model)
    val = logs.get("val_psnr")
    # A codec-aware run keeps the weights that survive JPEG best (best_by says which figure).
    by = "val_psnr_jpeg" if "val_psnr_jpeg" in logs else "val_psnr"
    score, best = logs.get(by), self.state.get("best_score", self.state.get("best_val_psnr"))
    if self.chief:
      if score is not None and (best is None or score > best):
        self._save_plain(wd.BEST_WEIGHTS)
        self.state.update(best_val_psnr=val, best_step=step, best_score=score, best_by=by)
      self._save_plain(wd.LAST_WEIGHTS)
    save_weights(self.model, self.backup_path)
    if self.chief:
      self.state.update(
          step=step, epoch=epoch + 1, last_val_psnr=val, last_val_lr_psnr=logs.get("val_lr_psnr"),
          **({"last_val_psnr_jpeg": logs["val_psnr_jpeg"]} if "val_psnr_jpeg" in logs else {}),
          train_seconds=self.seconds_before + time.time() - self.started,
          complete=step >= self.experiment.train.steps, backend=keras.backend.backend())
      wd.write_state(self.workdir, self.state)
      line = {"step": step, "seconds": round(self.state["train_seconds"], 1),
              **{k: round(_scalar(v), 6) for k, v in logs.items()}}
      wd.append_history(self.workdir, line)


class Summaries(keras.callbacks.Callback):
  """TensorBoard: every log (loss terms, log-det, gradient norm, validation PSNRs) and the
  learning rate each epoch, and the first validation image's HR, LR from F, bicubic LR and
  reconstruction."""

  def __init__(self, logdir, validation: Validation | None):
    super().__init__()
    import tensorflow as tf  # TensorBoard's writer: only where TensorFlow is the backend

    self.tf = tf
    self.writer = tf.summary.create_file_writer(str(logdir))
    self.validation = validation

  def on_epoch_end(self, epoch, logs=None):
    tf = self.tf
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


class TrainProgress(keras.callbacks.Callback):
  """The progress bar of `fgrn_tf.progress` over the steps (steps/s, ETA, loss), and a line
  per epoch with the validation PSNRs. Off a terminal a bar line comes every `every_seconds`."""

  def __init__(self, total_steps: int, stream, every_seconds: float = 60.0):
    super().__init__()
    self.total, self.stream, self.every = total_steps, stream, every_seconds
    self.bar = None

  def on_train_begin(self, logs=None):
    self.bar = Progress(self.total, "step", "steps/s", self.stream, every_seconds=self.every)
    self.bar.done = current_step(self.model)  # a resumed run: the rate counts this sitting only

  def _status(self, logs) -> str:
    rate = self.bar.rate()
    eta = (self.total - self.bar.done) / rate if rate > 0 else float("nan")
    loss = _scalar(logs["loss"]) if logs and "loss" in logs else float("nan")
    return f"ETA {format_duration(eta)}  loss {loss:.4f}"

  def on_train_batch_end(self, batch, logs=None):
    self.bar.advance(note=self._status(logs))

  def on_epoch_end(self, epoch, logs=None):
    extra = ""
    if logs and "val_psnr" in logs:
      extra = (f"  val PSNR {logs['val_psnr']:.2f} dB  LR vs bicubic "
               f"{logs['val_lr_psnr']:.2f} dB")
      if "val_psnr_jpeg" in logs:
        extra += f"  through JPEG q90 {logs['val_psnr_jpeg']:.2f} dB"
    self.bar.clear()
    print(f"step {self.bar.done}/{self.total}  {self.bar.rate():.2f} steps/s  "
          f"{self._status(logs)}{extra}  (backed up)", file=self.stream, flush=True)

  def on_train_end(self, logs=None):
    self.bar.close()


class TimeLimit(keras.callbacks.Callback):
  """Stops training at an epoch end (after its backup) when the next epoch, as long as the
  slowest since the first (which also compiled the step), would end after `deadline` (a
  `time.time()` value)."""

  def __init__(self, deadline: float):
    super().__init__()
    self.deadline = deadline
    self.durations = []

  def on_epoch_begin(self, epoch, logs=None):
    self.began = time.time()

  def on_epoch_end(self, epoch, logs=None):
    now = time.time()
    self.durations.append(now - self.began)
    if now + max(self.durations[1:] or self.durations) > self.deadline:
      self.model.stop_training = True
