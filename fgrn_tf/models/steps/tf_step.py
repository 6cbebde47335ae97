"""FGRN's training step on TensorFlow: a GradientTape over the objective, under any
`tf.distribute` strategy (the loss of each replica is divided by the global batch)."""

from __future__ import annotations

import keras
import tensorflow as tf

from fgrn_tf.distribute import is_multi_worker


def replica_mean(per_example):
  """Sum over this replica's examples divided by the global batch (all replicas): under
  `tf.distribute` the optimizer sums the replicas' gradients."""
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  global_batch = tf.cast(tf.shape(per_example)[0] * replicas, per_example.dtype)
  return tf.reduce_sum(per_example) / global_batch


def global_norm(grads) -> tf.Tensor:
  """The norm of the step's whole gradient. Under a multi-replica strategy each replica holds its
  share (the loss is divided by the global batch), so the norm is of their sum, all-reduced
  here: one more reduction of the gradients a step, only with more than one replica."""
  context = tf.distribute.get_replica_context()
  if context is not None and context.num_replicas_in_sync > 1:
    grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
  return tf.linalg.global_norm(grads)


@keras.saving.register_keras_serializable(package="fgrn_tf")
class Adam(keras.optimizers.Adam):
  """Keras' Adam, its update done by TensorFlow's fused kernel (`ResourceApplyAdam`).

  Keras 3 writes Adam's update in `keras.ops`, ~39 graph ops a variable on TensorFlow: 3045 of
  the 4680 ops of the smoke network's training step (78 variables), which TF traces, optimises
  and runs op by op. The kernel does the same arithmetic on the same variables (momentums,
  velocities, `iterations`), so a backup holds what Keras' Adam would hold and resumes either.
  (Its scalars are made for each variable: `update_step` is the public hook, and a cache across
  its calls would have to tell one update from the next.)
  """

  def update_step(self, gradient, variable, learning_rate):
    if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable, learning_rate)
    dtype = variable.dtype
    index = self._get_variable_index(variable)
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.constant(self.beta_1, dtype), tf.constant(self.beta_2, dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=self._momentums[index].value.handle,
        v=self._velocities[index].value.handle, beta1_power=tf.pow(beta_1, step),
        beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1,
        beta2=beta_2, epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


class TrainStep:
  """`train_step` for `keras.Model.fit` on TensorFlow (mixed into FGRN)."""

  def train_step(self, data):
    # Keras hands over `(x,)` from train_on_batch and x itself from a dataset of tensors.
    hr, target, _ = keras.utils.unpack_x_y_sample_weight(data)
    if target is not None:
      raise ValueError("FGRN trains on HR batches alone (it computes the bicubic LR itself); "
                       "received (x, y) data")
    variables = self.trainable_variables
    grads, values = self.gradients(hr, variables, self.optimizer.scale_loss)
    self.optimizer.apply_gradients(zip(grads, variables, strict=True))
    # The loss-scale optimizer unscales the gradients itself; the logged norm is the true one.
    norm = global_norm(grads) / self.optimizer.scale_loss(tf.constant(1.0))
    return self._update({**values, "grad_norm": norm})

  def gradients(self, hr, variables, scale_loss=None):
    """The training loss's gradients for `variables` on the HR batch, and its terms `[N]`.

    `scale_loss` (the optimizer's, under mixed_float16) scales the loss before the gradient;
    the gradients returned are then scaled the same."""
    with tf.GradientTape() as tape:
      values = self.loss_terms(tf.convert_to_tensor(hr))
      loss = replica_mean(values["loss"])
      if scale_loss is not None:
        loss = scale_loss(loss)
    return tape.gradient(loss, variables), values

  def _update(self, values):
    logs = {}
    multi_worker = is_multi_worker()
    for name, value in values.items():
      self.trackers[name].update_state(value)
      result = self.trackers[name].result()
      # Keras reduces logs along axis 0 across workers; scalars have none (docs/tf_notes.md,
      # Training).
      logs[name] = tf.reshape(result, [1]) if multi_worker else result
    return logs
