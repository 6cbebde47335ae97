"""Distributed training: MirroredStrategy on 2 logical CPUs matches one device, and two
MultiWorkerMirroredStrategy workers on 127.0.0.1 train together and agree.

Each runs in fresh processes: logical devices and TF_CONFIG must be set before TF starts.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import forked_tools
import numpy as np
import pytest
from helpers import ROOT, image_folder, train_command

from fgrn_tf import config
from fgrn_tf import workdir as wd
from fgrn_tf.train import trainer
from fgrn_tf.train.callbacks import current_step

MIRRORED_SCRIPT = textwrap.dedent("""
  import json, sys
  import tensorflow as tf
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  import numpy as np
  from fgrn_tf import config, distribute
  from fgrn_tf.train import trainer
  from fgrn_tf.data import images, patches, pipeline

  exp = config.preset("smoke").replace(train={"batch_size": 4, "patch_size": 16})
  image_set = patches.load_images(images.list_images(sys.argv[1]), 16)

  def run(strategy):
    model = trainer.build_model(exp, strategy)
    start = [w.copy() for w in model.get_weights()]
    ds = pipeline.training_dataset(image_set, 2, 4, 16, seed=0)
    model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
    return start, model.get_weights(), strategy.num_replicas_in_sync

  start, one, n1 = run(tf.distribute.get_strategy())
  _, two, n2 = run(distribute.choose_strategy(["/cpu:0", "/cpu:1"]))
  diff = lambda a, b: max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
  print(json.dumps({"replicas": [n1, n2], "moved": diff(start, one), "diff": diff(one, two)}))
""")


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_one_device(tmp_path):
  data = image_folder(tmp_path / "data")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = forked_tools.run([sys.executable, "-c", MIRRORED_SCRIPT, data], cwd=ROOT, env=env,
                            timeout=240)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["replicas"] == [1, 2]
  assert out["moved"] > 1e-4  # training did change the weights
  assert out["diff"] < 1e-5, out  # and the replicas' gradients were combined correctly


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


@pytest.mark.slow
def test_two_multiworker_processes_train_together_and_agree(tmp_path):
  data = image_folder(tmp_path / "data")
  workdir = tmp_path / "run"
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  args = ["--preset", "smoke", "--workdir", str(workdir), "--data_dirs", data,
          "--steps", "4", "--steps_per_epoch", "2"]
  procs = []
  try:
    for index in range(2):
      env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                 TF_CONFIG=json.dumps({"cluster": cluster,
                                       "task": {"type": "worker", "index": index}}))
      # A worker waiting for its peer ignores SIGTERM: bound each by SIGKILL, in its own group.
      procs.append(subprocess.Popen(
          train_command(*args, timeout=300), cwd=ROOT, env=env,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
    deadline = time.time() + 330
    while time.time() < deadline and any(p.poll() is None for p in procs):
      if any(p.poll() not in (None, 0) for p in procs):
        break  # one worker failed: the other would wait for it until its timeout
      time.sleep(0.5)
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
  outputs = [p.communicate(timeout=30) for p in procs]
  for p, (_, err) in zip(procs, outputs, strict=True):
    assert p.returncode == 0, err[-3000:]
  assert "finished: 4/4 steps" in outputs[0][0]  # the chief reports
  exp = config.smoke().replace(train={"steps": 4, "steps_per_epoch": 2})
  models = []
  for chief, index in ((True, 0), (False, 1)):
    model = trainer.build_model(exp)
    model.load_weights(wd.backup_path(workdir, chief, index))
    models.append(model)
  a, b = models
  assert current_step(a) == current_step(b) == 4
  for va, vb in zip(a.weights, b.weights, strict=True):
    np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-6, err_msg=va.path)
  assert (workdir / wd.BEST_WEIGHTS).is_file() and (workdir / wd.LAST_WEIGHTS).is_file()
