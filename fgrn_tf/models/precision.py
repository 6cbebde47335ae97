"""Mixed precision: which dtype policy Gd and Gu compute in, and what always stays float32.

`float32` is the default everywhere. `mixed_bfloat16` (CPUs with AVX512-BF16 or AMX, TPUs,
recent GPUs) and `mixed_float16` (NVIDIA GPUs) run the convolutions of Gd and Gu in the low
precision with float32 variables. The flow F (its couplings, `exp` and log-determinant), both
quantizers, the bicubic target, the differentiable JPEG and the losses stay float32: F must
invert exactly, and the 8-bit grid the LR and x live on is finer than bfloat16 near 1.0.
Weights are float32 under every policy, so a model trained in one precision runs in any other.
"""

from __future__ import annotations

import keras

from fgrn_tf.config import PRECISIONS
from fgrn_tf.errors import UsageError


def check(precision: str) -> str:
  """`precision` if it is one of PRECISIONS; UsageError (one line) otherwise."""
  if precision not in PRECISIONS:
    raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
  return precision


def policy(precision: str) -> keras.DTypePolicy:
  """The Keras dtype policy of Gd and Gu under `precision`."""
  return keras.DTypePolicy(check(precision))


@keras.saving.register_keras_serializable(package="fgrn_tf")
class StepCountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
  """Keras' dynamic loss scaling, except that a step it skips (non-finite float16 gradients)
  still counts in `iterations`.

  Keras leaves `iterations` alone on a skipped step, but training reads its step from
  `iterations`: backups, the learning-rate schedule and resume all assume one iteration per
  batch, and a resumed run must find itself at an epoch boundary.
  """

  def _stateful_handle_non_finite_grads(self):
    super()._stateful_handle_non_finite_grads()
    self.inner_optimizer.iterations.assign_add(1)


def optimizer(inner: keras.optimizers.Optimizer, precision: str) -> keras.optimizers.Optimizer:
  """`inner` wrapped for `precision`: dynamic loss scaling under mixed_float16 (float16's range
  is too small for small gradients), `inner` itself otherwise."""
  if check(precision) == "mixed_float16":
    return StepCountingLossScaleOptimizer(inner)
  return inner
