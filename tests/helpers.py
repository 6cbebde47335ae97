"""Small builders shared by the tests."""

import keras
import numpy as np

from fgrn_tf.config import ModelConfig, smoke
from fgrn_tf.models.fgrn import FGRN


def tiny_config(**changes) -> ModelConfig:
  return smoke().model.replace(**changes)


def randomize_zero_convs(layer, seed: int = 0, std: float = 0.05):
  """Gives every all-zero kernel small random values, so couplings are no longer the identity."""
  rng = np.random.default_rng(seed)
  for v in layer.weights:
    value = v.numpy()
    if value.ndim == 4 and not value.any():
      v.assign(rng.normal(0, std, value.shape).astype(value.dtype))


def tiny_model(seed: int = 0, **changes) -> FGRN:
  keras.utils.set_random_seed(seed)
  model = FGRN(tiny_config(**changes))
  if model.flow is not None:
    randomize_zero_convs(model.flow, seed)
  return model


def random_images(n, h, w, seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  if dtype == np.uint8:
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
  return rng.uniform(0, 1, (n, h, w, 3)).astype(dtype)


def wave_images(n, h, w, seed=0):
  """Smooth sinusoidal colour patterns: learnable in a few steps, unlike white noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  out = np.zeros((n, h, w, 3), np.float32)
  for i in range(n):
    for c in range(3):
      fy, fx = rng.uniform(0.2, 1.2, 2)
      out[i, :, :, c] = 0.5 + 0.4 * np.sin(fx * xx + fy * yy + rng.uniform(0, 6.3))
  return out
