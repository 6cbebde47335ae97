"""FGRN's training step on JAX: the stateless step of Keras' "custom train_step in JAX" guide.

The objective (`FGRN.loss_terms`) runs unchanged inside a `keras.StatelessScope` that maps the
model's and the optimizer's variables to the values being traced, so `jax.value_and_grad`
differentiates the very code the TensorFlow step tapes (the codec draws read the step from the
optimizer's `iterations` there, as on TensorFlow). Under `keras.distribution.DataParallel` the
batch is sharded over the devices and the loss is the mean over the global batch, so the
gradients, the update and the logged norm are the whole step's without any explicit reduction.
"""

from __future__ import annotations

import jax
import keras
from keras import ops


class TrainStep:
  """`train_step(state, data)` for `keras.Model.fit` on JAX (mixed into FGRN)."""

  def train_step(self, state, data):
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    hr, target, _ = keras.utils.unpack_x_y_sample_weight(data)
    if target is not None:
      raise ValueError("FGRN trains on HR batches alone (it computes the bicubic LR itself); "
                       "received (x, y) data")
    optimizer = self.optimizer

    def objective(trainable, non_trainable):
      mapping = [*zip(self.trainable_variables, trainable, strict=True),
                 *zip(self.non_trainable_variables, non_trainable, strict=True),
                 *zip(optimizer.variables, optimizer_vars, strict=True)]
      with keras.StatelessScope(state_mapping=mapping) as scope:
        values = self.loss_terms(hr)
        loss = ops.mean(values["loss"])
      updated = [scope.get_current_value(v) for v in self.non_trainable_variables]
      updated = [old if new is None else new for new, old in zip(updated, non_trainable,
                                                                 strict=True)]
      return loss, (values, updated)

    (_, (values, non_trainable)), grads = jax.value_and_grad(objective, has_aux=True)(
        trainable, non_trainable)
    trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
    values["grad_norm"] = ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))
    logs, updated, at = {}, [], 0
    for name, tracker in self.trackers.items():
      count = len(tracker.variables)
      mine = tracker.stateless_update_state(metrics_vars[at:at + count], values[name])
      logs[name] = tracker.stateless_result(mine)
      updated.extend(mine)
      at += count
    return logs, (trainable, non_trainable, optimizer_vars, updated)
