"""How a training step differentiates FGRN's objective and applies the update, per backend.

`FGRN.loss_terms` is the objective, written once in `keras.ops`. Keras' trainers call
`train_step` with different signatures on each backend (TensorFlow: the batch, with variables
updated in place; JAX: the whole state in and out, nothing mutated), so each backend has its
own small step, and `TrainStep` is the one for the backend Keras runs on, as Keras picks its
own Trainer class. `Adam` is the optimizer to train with: Keras' own, with TF's fused update
kernel on TensorFlow.
"""

from __future__ import annotations

import keras

from fgrn_tf.config import BACKENDS

Adam = keras.optimizers.Adam
if keras.backend.backend() == "jax":
  from fgrn_tf.models.steps.jax_step import TrainStep
elif keras.backend.backend() == "tensorflow":
  from fgrn_tf.models.steps.tf_step import Adam, TrainStep
else:

  class TrainStep:
    """Inference only: FGRN trains on the backends in BACKENDS."""

    def train_step(self, *args):
      raise NotImplementedError(f"FGRN trains on the {' and '.join(BACKENDS)} backends, not on "
                                f"{keras.backend.backend()}")

__all__ = ["BACKENDS", "Adam", "TrainStep"]
