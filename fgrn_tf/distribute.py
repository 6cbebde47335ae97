"""Which `tf.distribute` strategy a training run uses, and this process's place in it."""

from __future__ import annotations

import os

import tensorflow as tf


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


def is_multi_worker(strategy=None) -> bool:
  """Whether `strategy` (default: the one in scope) spans several processes."""
  strategy = strategy or tf.distribute.get_strategy()
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_info(strategy) -> tuple[bool, int, int]:
  """(is_chief, worker_index, num_workers) of this process."""
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
