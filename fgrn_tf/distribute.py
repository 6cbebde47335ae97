"""How a training run spreads over devices and processes, and this process's place in it.

TensorFlow: a `tf.distribute` strategy. JAX: Keras' `DataParallel` distribution over the local
devices (and, with `jax.distributed.initialize` called first, over every host's). Each function
imports only its own backend, so a JAX machine without TensorFlow trains too.
"""

from __future__ import annotations

import os


def choose_strategy(devices=None):
  """MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy over several GPUs
  (or the given devices), else the default one-device strategy.

  Call it before any other TensorFlow work: a multi-worker strategy must be created first.
  """
  import tensorflow as tf

  if os.environ.get("TF_CONFIG"):
    return tf.distribute.MultiWorkerMirroredStrategy()
  if devices:
    return tf.distribute.MirroredStrategy(list(devices))
  if len(tf.config.list_logical_devices("GPU")) > 1:
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()


def is_multi_worker(strategy=None) -> bool:
  """Whether `strategy` (default: the one in scope) spans several processes."""
  import tensorflow as tf

  strategy = strategy or tf.distribute.get_strategy()
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_info(strategy) -> tuple[bool, int, int]:
  """(is_chief, worker_index, num_workers) of this process under a TF strategy."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not is_multi_worker(strategy) or resolver is None:
    return True, 0, 1
  spec = resolver.cluster_spec().as_dict()
  workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
  task_type, task_id = resolver.task_type, resolver.task_id or 0
  has_chief = bool(spec.get("chief"))
  chief = (task_type == "chief") or (not has_chief and task_type == "worker" and task_id == 0)
  index = task_id + (1 if has_chief and task_type == "worker" else 0)
  return chief, index, workers


def jax_data_parallel() -> int:
  """Shards every batch over all JAX devices (Keras' DataParallel) when there are several;
  returns their number. Each host feeds its own share of the global batch."""
  import jax
  import keras

  devices = jax.devices()
  if len(devices) > 1:
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
  return len(devices)


def jax_worker_info() -> tuple[bool, int, int]:
  """(is_chief, process_index, process_count) of this JAX process."""
  import jax

  return jax.process_index() == 0, jax.process_index(), jax.process_count()
