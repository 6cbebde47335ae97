"""The training workdir: what a run leaves behind, and loading a model from it.

Layout (written by `train_lib`, read by evaluation, export and the command-line tool):
  config.json           the Experiment (model + training recipe) as JSON
  best.weights.h5       weights with the best validation PSNR so far
  last.weights.h5       weights at the end of the last finished epoch
  backup/               BackupAndRestore state for resuming (not for inference)
  tensorboard/          summaries
"""

from __future__ import annotations

import os
import pathlib

from fgrn_tf.config import Experiment

CONFIG = "config.json"
BEST_WEIGHTS = "best.weights.h5"
LAST_WEIGHTS = "last.weights.h5"


class ModelNotFoundError(FileNotFoundError):
  """A path names no trained model (with one line on what was looked for)."""


def read_experiment(workdir) -> Experiment:
  path = pathlib.Path(workdir) / CONFIG
  if not path.is_file():
    raise ModelNotFoundError(f"{workdir}: not a training workdir (no {CONFIG})")
  return Experiment.from_json(path.read_text())


def write_experiment(workdir, experiment: Experiment) -> None:
  """Writes config.json atomically (a temporary file renamed into place): a run killed at any
  moment leaves the old file or the new one, never a partial one."""
  path = pathlib.Path(workdir)
  path.mkdir(parents=True, exist_ok=True)
  tmp = path / f".{CONFIG}.{os.getpid()}.tmp"
  tmp.write_text(experiment.to_json())
  os.replace(tmp, path / CONFIG)


def weights_path(workdir) -> pathlib.Path:
  """The weights inference should use: best by validation PSNR, else the last saved."""
  workdir = pathlib.Path(workdir)
  for name in (BEST_WEIGHTS, LAST_WEIGHTS):
    if (workdir / name).is_file():
      return workdir / name
  raise ModelNotFoundError(f"{workdir}: no trained weights ({BEST_WEIGHTS} or {LAST_WEIGHTS})")


def load_model(path):
  """Loads an FGRN from a training workdir (config.json + weights) or a `.keras` file."""
  import keras

  from fgrn_tf.models.fgrn import FGRN

  path = pathlib.Path(path)
  if path.suffix == ".keras":
    if not path.is_file():
      raise ModelNotFoundError(f"{path}: no such model file")
    return keras.models.load_model(path, compile=False)
  experiment = read_experiment(path)
  model = FGRN(experiment.model)
  model.load_weights(weights_path(path))
  return model
