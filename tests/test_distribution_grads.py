"""Losses are right under tf.distribute: 2 logical CPUs give the gradients of 1 device."""

import sys
import textwrap

import forked_tools
from conftest import ROOT

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import sys
    sys.path.insert(0, "tests")  # the tests' helpers module
    from helpers import random_images, tiny_model
    from fgrn_tf.models.steps.tf_step import replica_mean

    hr = tf.constant(random_images(4, 16, 16, seed=1))

    def grads_of(model, hr):  # as train_step: the target from the replica's own HR
      with tf.GradientTape() as tape:
        out = model(hr, training=True)
        rec, guide, _ = model._loss_terms(hr, model.guidance_target(hr), out)
        loss = replica_mean(rec + guide)
      return tape.gradient(loss, model.trainable_variables)

    single = grads_of(tiny_model(seed=3), hr)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
      model = tiny_model(seed=3)
    dataset = tf.data.Dataset.from_tensor_slices(hr).batch(4)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    per_replica = strategy.run(tf.function(lambda h: grads_of(model, h)), args=(batch,))
    summed = [strategy.reduce("SUM", g, axis=None) for g in per_replica]
    worst = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(single, summed))
    scale = max(float(np.abs(a.numpy()).max()) for a in single)
    print("REPLICAS", strategy.num_replicas_in_sync, "WORST", worst, "SCALE", scale)

    # The logged grad_norm of a training step on 2 replicas is the norm of the whole gradient.
    with strategy.scope():
      model = tiny_model(seed=3)
      model.compile(optimizer="sgd")
    logs = model.train_on_batch(hr, return_dict=True)
    print("LOGGED", float(logs["grad_norm"]), "GLOBAL", float(tf.linalg.global_norm(single)))
""")


def test_same_gradients_and_logged_grad_norm_on_one_device_and_two_logical_cpus():
  result = forked_tools.run([sys.executable, "-c", SCRIPT], cwd=ROOT, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  words = result.stdout.split()
  replicas = int(words[words.index("REPLICAS") + 1])
  worst = float(words[words.index("WORST") + 1])
  scale = float(words[words.index("SCALE") + 1])
  assert replicas == 2
  assert scale > 1e-3
  assert worst < 1e-5 * max(1.0, scale), (worst, scale)
  logged = float(words[words.index("LOGGED") + 1])
  assert abs(logged - float(words[words.index("GLOBAL") + 1])) < 1e-4 * logged, result.stdout
