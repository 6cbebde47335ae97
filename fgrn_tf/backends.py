"""One interface over the ways a trained FGRN can be run: Keras, SavedModel, TFLite.

The command-line tool and the evaluation drive a `Backend`, so what is evaluated is what ships.
Every backend takes and returns uint8 batches `[N, H, W, 3]`; inputs to `downscale` have H and
W divisible by `scale` (callers pad; see `inference.py`).
"""

from __future__ import annotations

import abc
import pathlib

import numpy as np


class Backend(abc.ABC):
  """A trained FGRN's two halves."""

  scale: int
  name: str = "backend"

  @abc.abstractmethod
  def downscale(self, hr: np.ndarray) -> np.ndarray:
    """uint8 `[N, H, W, 3]` -> uint8 `[N, H/s, W/s, 3]`."""

  @abc.abstractmethod
  def upscale(self, lr: np.ndarray) -> np.ndarray:
    """uint8 `[N, h, w, 3]` -> uint8 `[N, h*s, w*s, 3]`."""


class KerasBackend(Backend):
  """An in-memory `FGRN` (from a workdir or `.keras` file), traced once per input shape."""

  name = "keras"

  def __init__(self, model):
    import tensorflow as tf

    self.model = model
    self.scale = model.scale
    spec = tf.TensorSpec([None, None, None, 3], tf.uint8)
    self._down = tf.function(model.downscale, input_signature=[spec])
    self._up = tf.function(model.upscale, input_signature=[spec])

  def downscale(self, hr):
    return self._down(np.asarray(hr)).numpy()

  def upscale(self, lr):
    return self._up(np.asarray(lr)).numpy()


def load_backend(path) -> Backend:
  """A backend for a training workdir or a `.keras` file (more kinds: see export)."""
  from fgrn_tf.workdir import load_model

  return KerasBackend(load_model(pathlib.Path(path)))
