"""Training: the config and its flags, resumable runs (also after SIGKILL), NaN handling,
recipe checks and the `train_main.py` entry point, on the smoke network and tiny images."""

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import forked_tools
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import (
  ROOT,
  image_folder,
  losses_on_a_fixed_batch,
  split_importtime,
  train_command,
  wave_images,
)

from fgrn_tf import config
from fgrn_tf import workdir as wd
from fgrn_tf.cli import config_fields
from fgrn_tf.data import patches, pipeline
from fgrn_tf.models import steps
from fgrn_tf.train import recipe, trainer
from fgrn_tf.train.callbacks import current_step, save_weights

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _smoke(data_dir, **train_changes):
  return config.preset("smoke").replace(train={"data_dirs": (data_dir,), **train_changes})


def _run_main(*args, timeout=240):
  return forked_tools.run([sys.executable, "train_main.py", *args], cwd=ROOT, env=ENV,
                          timeout=timeout)


def _run_timing_imports(*args):
  """train_main.py ARGS under -X importtime: the process, its own stderr lines, its imports."""
  proc = subprocess.run([sys.executable, "-X", "importtime", "train_main.py", *args], cwd=ROOT,
                        env=ENV, capture_output=True, text=True, timeout=120)
  return proc, *split_importtime(proc.stderr)


def _start_run(tmp_path, steps: int, timeout=None, **popen):
  """A train_main.py run of `steps` steps on tiny images, in a process group of its own (so that
  a kill reaches `timeout` and Python together). Returns (process, workdir, its arguments)."""
  workdir = tmp_path / "run"
  args = ["--preset", "smoke", "--workdir", str(workdir), "--data_dirs",
          image_folder(tmp_path / "data"), "--steps", str(steps), "--steps_per_epoch", "2"]
  popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
  proc = subprocess.Popen(train_command(*args, timeout=timeout), cwd=ROOT, env=ENV,
                          start_new_session=True, **popen)
  return proc, workdir, args


def _backup_step(workdir, experiment):
  model = trainer.build_model(experiment)
  model.load_weights(wd.backup_path(workdir))
  return current_step(model), model


# ---- the config and its flags ------------------------------------------------------------------

def test_every_config_field_is_a_flag_with_its_docstring_line_as_help():
  fields = {(f.section, f.name): f for f in config_fields.override_fields()}
  for section, cls in (("model", config.ModelConfig), ("train", config.TrainConfig),
                       ("objective", config.Objective)):
    names = [f.name for f in dataclasses.fields(cls)]
    assert [n for s, n in fields if s == section] == names
    for name in names:
      assert len(fields[section, name].help) > 10, name
  assert fields["objective", "gamma"].help.startswith("weight of the log-determinant")
  assert fields["model", "guidance"].choices == ("flow", "bicubic", "none")
  assert fields["train", "val_images"].help.endswith("when no validation folder is given.")
  assert [fields["model", "snap"].kind, fields["train", "data_dirs"].kind] == ["bool", "list"]


def test_train_main_helpfull_lists_every_field_as_a_flag():
  result = forked_tools.run([sys.executable, "train_main.py", "--helpfull"], cwd=ROOT, env=ENV,
                            timeout=120)
  assert result.returncode in (0, 1) and result.stderr == "", result.stderr[-2000:]  # absl: 1
  for f in config_fields.override_fields():
    assert f"--{f.name}:" in result.stdout or f"--[no]{f.name}:" in result.stdout, f.name
  assert "--gamma: Weight of the log-determinant" in result.stdout


def test_overrides_change_only_what_was_given_and_store_absolute_paths(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  smoke = config.preset("smoke")
  exp = smoke.with_overrides(model={"snap": False, "scale": None},
                             train={"steps": 12, "data_dirs": ["a", "", "/b"], "val_dir": "v",
                                    "seed": None}, objective={"gamma": 0.01})
  assert exp.model == smoke.model.replace(snap=False)
  assert exp.objective == smoke.objective.replace(gamma=0.01)
  assert exp.train == smoke.train.replace(steps=12, data_dirs=(str(tmp_path / "a"), "/b"),
                                          val_dir=str(tmp_path / "v"))
  assert smoke.with_overrides(train={"data_dirs": [], "val_dir": ""}) == smoke
  assert smoke.with_overrides() == smoke


@pytest.mark.parametrize("make, message", [
    (lambda: config.preset("smoke").with_overrides(model={"depth": 3}), r"ModelConfig.*'depth'"),
    (lambda: config.preset("smoke").with_overrides(train={"epochs": 3, "lr": 1}),
     r"unknown TrainConfig fields \['epochs', 'lr'\]"),
    (lambda: config.preset("smoke").with_overrides(model={"scale": 1}), "scale must be"),
    (lambda: config.TrainConfig.from_dict({"steps": 4, "warmup": 2}), r"TrainConfig.*'warmup'"),
    (lambda: config.Experiment.from_json(json.dumps(
        {"model": {}, "train": {"steps": 4, "warmup": 2}})), r"TrainConfig.*'warmup'"),
    (lambda: config.Experiment.from_json(json.dumps({"model": {"depth": 1}, "train": {}})),
     r"ModelConfig.*'depth'"),
])
def test_unknown_or_out_of_range_fields_are_refused_naming_them(make, message):
  with pytest.raises(config.ConfigError, match=message):
    make()


def test_presets_share_the_paper_networks():
  x2, x4 = config.x2().model, config.x4().model
  assert {n: config.preset(n).model for n in ("quick", "cpu_x2", "table3_x2")} == {
      "quick": x2, "cpu_x2": x2, "table3_x2": x2}
  assert config.cpu_x4().model == x4 and config.cpu_x4().train.patch_size == 128
  assert config.smoke().model == x2.replace(width=8, down_blocks=1, up_blocks=1, flow_cells=2,
                                            flow_growth=4)


# ---- recipe checks (no training) ---------------------------------------------------------------

def test_the_fused_adam_updates_as_keras_adam_does_and_keeps_its_state():
  # The trainer's Adam on TF runs TF's fused kernel; a backup must resume under either.
  assert isinstance(trainer.build_model(config.preset("smoke")).optimizer, steps.Adam)
  rng = np.random.default_rng(0)
  shapes = [(3, 3, 4, 8), (8,), (5,)]
  # Gradients from large to below Adam's epsilon (1e-7), the same at every step.
  grads = [(rng.normal(size=s) * 10.0 ** -rng.integers(0, 9, size=s)).astype("float32")
           for s in shapes]
  start = [rng.normal(size=s).astype("float32") for s in shapes]
  runs = []
  for optimizer in (keras.optimizers.Adam(1e-2), steps.Adam(1e-2)):
    weights = [keras.Variable(w, name=f"w{i}") for i, w in enumerate(start)]
    for _ in range(3):
      optimizer.apply_gradients(zip(map(tf.constant, grads), weights, strict=True))
    runs.append((optimizer, [w.numpy() for w in weights]))
  (theirs, keras_weights), (ours, our_weights) = runs
  assert [(v.name, v.shape) for v in ours.variables] == [
      (v.name, v.shape) for v in theirs.variables]
  assert int(ours.iterations.numpy()) == 3
  for w, g, got, keras_got in zip(start, grads, our_weights, keras_weights, strict=True):
    w, g, m, v = w.astype(float), g.astype(float), 0.0, 0.0  # Adam in float64
    for t in (1, 2, 3):
      m, v = m + (g - m) * 0.1, v + (g * g - v) * 0.001
      w = w - m * 1e-2 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) / (np.sqrt(v) + 1e-7)
    # float32 rounding alone: Keras' separate ops are off by up to ~4e-7 here, the kernel ~2e-7.
    np.testing.assert_allclose(got, w, rtol=0, atol=5e-7)
    np.testing.assert_allclose(keras_got, w, rtol=0, atol=1e-6)


def test_learning_rate_halves_every_n_steps():
  schedule = trainer.learning_rate_schedule(
      config.TrainConfig(learning_rate=3e-4, lr_halving_steps=100))
  rates = [float(schedule(s)) for s in (0, 99, 100, 199, 200, 450)]
  np.testing.assert_allclose(rates, [3e-4, 3e-4, 1.5e-4, 1.5e-4, 7.5e-5, 3e-4 / 16], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_every_preset_passes_the_recipe_checks(name):
  trainer.check_experiment(config.preset(name))


def _trainings():
  """One preset for each (network, Adam's first rate) the presets use: the rest of a recipe is
  data, length and schedule. The paper-sized networks take ~20 s each on 2 shared cores."""
  names = {}
  for name in sorted(config.PRESETS):
    exp = config.preset(name)
    names.setdefault((exp.model, exp.train.learning_rate), []).append(name)
  return [pytest.param(group[0], id="+".join(group),
                       marks=[pytest.mark.slow] if model.width >= 64 else [])
          for (model, _), group in names.items()]


@pytest.mark.parametrize("name", _trainings())
def test_every_presets_network_and_optimizer_lower_the_loss_on_a_fixed_batch(name):
  exp = config.preset(name)
  model = trainer.build_model(exp)  # the preset's network, Adam and learning rate
  size = 8 * exp.model.scale
  hr = tf.constant(wave_images(2, size, size))
  before = _reconstruction_at_step_0(model, hr)
  _, last = losses_on_a_fixed_batch(model, hr, 4)
  # The reconstruction, which every step must lower: measured at step 0's codec draw before and
  # after (a codec-aware preset's JPEG quality changes with the step). F's L_guide may rise at
  # first while x moves under it: mobile_x4 (Adam 5e-4) goes 0.047 -> 0.077 in 4 steps, its
  # total with it, then trains normally (docs/mobile.md).
  after = _reconstruction_at_step_0(model, hr)
  assert after < before - 1e-3, (before, after)
  assert np.isfinite(last["loss"])


def _reconstruction_at_step_0(model, hr) -> float:
  """Mean |y - Gu(...)| of a training-mode pass with the draws of step 0."""
  step = model.optimizer.iterations
  kept = step.numpy()
  step.assign(0)
  try:
    return float(tf.reduce_mean(tf.abs(model(hr, training=True)["sr"] - hr)))
  finally:
    step.assign(kept)


@pytest.mark.parametrize("changes, message", [
    ({"patch_size": 33}, "not a multiple of the scale"),
    ({"steps": 7}, "multiple of steps_per_epoch"),
    ({"learning_rate": float("nan")}, "learning rate"),
])
def test_unusable_recipes_are_refused(changes, message):
  exp = config.preset("smoke")
  with pytest.raises(trainer.TrainError, match=message):
    trainer.check_experiment(config.Experiment(exp.model, exp.train.replace(**changes)))


def test_resume_refuses_a_different_network_or_recipe_but_allows_more_steps_or_a_new_objective():
  saved = config.preset("smoke")
  assert recipe.check_resumable(saved, saved) == []
  longer = config.Experiment(saved.model, saved.train.replace(steps=60))
  assert recipe.check_resumable(saved, longer) == ["steps: 6 -> 60"]
  moved = config.Experiment(saved.model, saved.train.replace(steps=60, lr_halving_steps=20))
  assert recipe.check_resumable(saved, moved) == ["steps: 6 -> 60",
                                                    "lr_halving_steps: 1000 -> 20"]
  # The objective is the training's, not the network's: a resumed run may change it.
  retuned = saved.replace(objective={"codec_min_quality": 80, "codec_max_quality": 95,
                                     "codec_prob": 0.25})
  assert recipe.check_resumable(saved, retuned) == ["codec_min_quality: 0 -> 80",
                                                    "codec_max_quality: 0 -> 95",
                                                    "codec_prob: 1.0 -> 0.25"]
  with pytest.raises(trainer.TrainError, match="different network.*guidance"):
    recipe.check_resumable(saved, config.Experiment(saved.model.replace(guidance="none"),
                                                      saved.train))
  with pytest.raises(trainer.TrainError, match="different recipe.*batch_size"):
    recipe.check_resumable(saved, config.Experiment(saved.model,
                                                      saved.train.replace(batch_size=3)))


def test_experiment_with_data_dirs_round_trips_through_json():
  exp = _smoke("/data/a", val_dir="/data/v")
  assert config.Experiment.from_json(exp.to_json()) == exp


# ---- training in this process ------------------------------------------------------------------

@pytest.mark.slow
def test_resumed_run_matches_an_uninterrupted_one(tmp_path, eager_functions):
  # What resumes (weights, Adam's moments, the schedule, the data stream) is the same in graph
  # mode, which the command-line runs below resume (a SIGKILLed run, Ctrl-C).
  data = image_folder(tmp_path / "data")
  whole = _smoke(data, steps=4, steps_per_epoch=2)
  first = _smoke(data, steps=2, steps_per_epoch=2)
  out = open(os.devnull, "w")
  trainer.train(whole, tmp_path / "whole", stream=out)
  trainer.train(first, tmp_path / "parts", stream=out)
  summary = trainer.train(whole, tmp_path / "parts", stream=out)  # the run extended to 4
  assert summary.steps == 4
  step_a, a = _backup_step(tmp_path / "whole", whole)
  step_b, b = _backup_step(tmp_path / "parts", whole)
  assert step_a == step_b == 4
  # Same weights and Adam moments: the optimizer state, schedule and data stream all resumed.
  for va, vb in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables,
                    strict=True):
    np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-5, err_msg=va.path)
  assert (tmp_path / "parts" / wd.BEST_WEIGHTS).is_file()
  model = wd.load_model(tmp_path / "parts")
  assert model.scale == 2
  again = trainer.train(whole, tmp_path / "parts", stream=out)
  assert again.already_complete and again.steps == 4


def test_a_codec_aware_run_resumes_as_an_uninterrupted_one(tmp_path, eager_functions):
  # Its JPEG qualities, and which examples go through JPEG, are drawn from the step: a resumed
  # run draws what the uninterrupted one drew, so it ends with the same weights.
  data = image_folder(tmp_path / "data")
  codec = {"codec_min_quality": 60, "codec_max_quality": 90, "codec_prob": 0.5}
  whole = _smoke(data, steps=4, steps_per_epoch=2).replace(objective=codec)
  first = _smoke(data, steps=2, steps_per_epoch=2).replace(objective=codec)
  out = open(os.devnull, "w")
  trainer.train(whole, tmp_path / "whole", stream=out)
  trainer.train(first, tmp_path / "parts", stream=out)
  assert trainer.train(whole, tmp_path / "parts", stream=out).steps == 4
  (_, a), (_, b) = (_backup_step(tmp_path / run, whole) for run in ("whole", "parts"))
  for va, vb in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables,
                    strict=True):
    np.testing.assert_allclose(va.numpy(), vb.numpy(), atol=1e-5, err_msg=va.path)


def test_nan_loss_stops_and_keeps_the_last_good_weights(tmp_path, monkeypatch, eager_functions):
  data = image_folder(tmp_path / "data")
  real = pipeline.training_dataset

  def poisoned(*args, **kwargs):
    good = real(*args, **kwargs)
    bad = good.map(lambda hr: hr * np.nan)
    return good.take(2).concatenate(bad)  # epoch 1 fine, NaN from step 3

  monkeypatch.setattr(pipeline, "training_dataset", poisoned)
  exp = _smoke(data, steps=6, steps_per_epoch=2)
  with pytest.raises(trainer.TrainError, match="NaN or infinite.*weights of step 2"):
    trainer.train(exp, tmp_path / "run", stream=open(os.devnull, "w"))
  assert wd.read_state(tmp_path / "run")["step"] == 2
  model = wd.load_model(tmp_path / "run")
  assert all(np.isfinite(w).all() for w in model.get_weights())
  step, _ = _backup_step(tmp_path / "run", exp)
  assert step == 2


def test_missing_data_folder_fails_before_building_anything(tmp_path):
  with pytest.raises(patches.DataError, match="no such folder"):
    trainer.train(_smoke(str(tmp_path / "nothing")), tmp_path / "run")
  assert not (tmp_path / "run" / wd.CONFIG).exists()


# ---- the entry point ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, message, before_tf", [
    (["--patch_size", "33"], "patch size 33 is not a multiple of the scale 2", True),
    (["--data_dirs", "/no/such/folder"], "/no/such/folder: no such folder", True),
    (["--val_dir", "/no/such/folder"], "validation data: /no/such/folder: no such folder", True),
    # Not creatable even by root: the error names the workdir, not a hidden temporary file.
    (["--workdir", "/proc/fgrn_run"], "/proc/fgrn_run", False),
])
def test_bad_flags_give_one_line_and_nonzero_exit(tmp_path, args, message, before_tf):
  result, lines, imported = _run_timing_imports("--preset", "smoke", "--workdir",
                                                 str(tmp_path / "run"), *args)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert lines[-1].startswith("train_main.py: error:") and message in lines[-1]
  # A mistake in the recipe or its folders is told before TensorFlow's seconds of importing.
  assert ("tensorflow" in imported) != before_tf, sorted(imported)[:20]
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_smoke_preset_trains_end_to_end_on_the_built_in_images(tmp_path):
  workdir = tmp_path / "run"
  # Flags of fields no hand-written flag had: they reach the run's config.
  args = ["--preset", "smoke", "--workdir", str(workdir), "--gamma", "0.002", "--flow_growth", "6"]
  result = _run_main(*args)
  assert result.returncode == 0, result.stderr
  assert "finished: 6/6 steps" in result.stdout and "validation PSNR" in result.stdout
  assert "steps/s" in result.stdout and "ETA" in result.stdout
  assert wd.read_experiment(workdir) == config.preset("smoke").replace(
      model={"flow_growth": 6}, objective={"gamma": 0.002})
  for name in (wd.BEST_WEIGHTS, wd.LAST_WEIGHTS, wd.STATE):
    assert (workdir / name).is_file(), name
  assert list((workdir / wd.TENSORBOARD).glob("events.out.tfevents.*"))
  # A rerun answers at once, before TensorFlow's import: the finished run, a network it is not.
  again, lines, imported = _run_timing_imports(*args)
  assert again.returncode == 0 and again.stdout.startswith("already complete"), again.stderr
  assert "tensorflow" not in imported
  other, lines, imported = _run_timing_imports(*args, "--width", "4")
  assert other.returncode == 1 and "different network (width: 8 -> 4)" in lines[-1]
  assert "tensorflow" not in imported


# ---- the workdir lock --------------------------------------------------------------------------

def test_workdir_lock_names_its_holder_and_is_free_once_released(tmp_path):
  wd.check_free(tmp_path / "run")
  assert not (tmp_path / "run").exists()  # a check creates nothing
  with wd.lock(tmp_path / "run"):
    with pytest.raises(wd.WorkdirBusyError, match=f"pid {os.getpid()}"):
      wd.check_free(tmp_path / "run")
    with pytest.raises(wd.WorkdirBusyError) as info:
      with wd.lock(tmp_path / "run"):
        pass
    message = str(info.value)
    assert f"pid {os.getpid()}" in message and os.uname().nodename in message
    assert str(tmp_path / "run") in message and "\n" not in message
  wd.check_free(tmp_path / "run")
  with wd.lock(tmp_path / "run"):
    pass


def test_a_run_that_fails_on_a_new_workdir_leaves_no_folder_behind(tmp_path):
  with pytest.raises(patches.DataError):
    trainer.train(_smoke(str(tmp_path / "nothing")), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def _wait_for_step(workdir, proc, step, timeout=200):
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if wd.read_state(workdir).get("step", 0) >= step:
      return
    time.sleep(0.2)
  pytest.fail(f"the run did not reach step {step} in time (exit status {proc.poll()})")


@pytest.mark.slow
def test_second_run_on_a_busy_workdir_fails_at_once_and_a_sigkilled_run_resumes_whole(tmp_path):
  # Python itself, not under `timeout`: its pid is the one the lock must name.
  first, workdir, args = _start_run(tmp_path, 4000)
  try:
    _wait_for_step(workdir, first, 2)
    config_before = (workdir / wd.CONFIG).read_bytes()
    second, lines, imported = _run_timing_imports(*args)
    assert second.returncode == 1, second.stderr[-2000:]
    assert "Traceback" not in second.stderr and "resuming" not in second.stdout
    assert lines[-1].startswith("train_main.py: error:") and str(workdir) in lines[-1]
    assert f"pid {first.pid}" in lines[-1] and os.uname().nodename in lines[-1]
    assert "tensorflow" not in imported  # told at once, not after TensorFlow's import
    # The first run never noticed: still training, its files untouched by the second.
    assert first.poll() is None
    reached = wd.read_state(workdir)["step"]
    _wait_for_step(workdir, first, reached + 2)
    assert (workdir / wd.CONFIG).read_bytes() == config_before
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
  finally:
    if first.poll() is None:
      os.killpg(first.pid, signal.SIGKILL)
      first.wait(timeout=30)
  killed_at = wd.read_state(workdir)["step"]
  # Whatever the kill interrupted, every file is whole.
  assert wd.read_experiment(workdir).train.steps == 4000
  wd.load_model(workdir)
  # The kernel dropped the dead run's lock: a third run resumes from the last backup (and ends
  # two steps later, at the step it was asked for).
  third = _run_main(*args[:-4], "--steps", str(killed_at + 2), "--steps_per_epoch", "2")
  assert third.returncode == 0, third.stderr[-2000:]
  assert f"resuming at step {killed_at}" in third.stdout
  assert f"finished: {killed_at + 2}/{killed_at + 2} steps" in third.stdout
  step, _ = _backup_step(workdir, wd.read_experiment(workdir))
  assert step == killed_at + 2
  assert not list(workdir.rglob(".*")), "a temporary file was left behind"


@pytest.mark.slow
def test_ctrl_c_exits_130_saying_which_step_a_rerun_continues_from(tmp_path):
  # A shell that starts pytest in the background has it ignore SIGINT, and children inherit that.
  proc, workdir, _ = _start_run(tmp_path, 4000, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    _wait_for_step(workdir, proc, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait(timeout=30)
  assert proc.returncode == 130, err[-2000:]
  step = wd.read_state(workdir)["step"]
  assert err.strip().splitlines()[-1] == (f"interrupted; rerun the same command to continue "
                                          f"from step {step}")
  assert "Traceback" not in err


# ---- messages name the real file ---------------------------------------------------------------

def test_atomic_write_errors_name_the_target_not_the_temporary_file(tmp_path):
  model = trainer.build_model(config.preset("smoke"))
  (tmp_path / "dir.weights.h5").mkdir()
  (tmp_path / "run" / wd.STATE).mkdir(parents=True)
  cases = [
      (lambda p: save_weights(model, p), pathlib.Path("/proc/x.weights.h5")),
      (lambda p: save_weights(model, p), tmp_path / "dir.weights.h5"),
      (lambda p: wd.write_state(p.parent, {}), pathlib.Path("/proc") / wd.STATE),
      (lambda p: wd.write_state(p.parent, {}), tmp_path / "run" / wd.STATE),
      (lambda p: wd.write_experiment(p.parent, config.preset("smoke")),
       pathlib.Path("/proc") / wd.CONFIG),
  ]
  for write, target in cases:
    with pytest.raises(OSError) as info:
      write(target)
    # Temporary names are hidden, beside the target: none may show, none may stay.
    assert str(target) in str(info.value) and "/." not in str(info.value), str(info.value)
  assert not list(tmp_path.rglob(".*"))


@pytest.mark.parametrize("text", ["{not json", "[]", '{"model": {"scale": 2}}', "\xff\xfe"])
def test_a_corrupt_config_is_refused_naming_the_file(tmp_path, text):
  (tmp_path / wd.CONFIG).write_bytes(text.encode("latin-1"))
  with pytest.raises(wd.WorkdirError, match=f"^{tmp_path / wd.CONFIG}: "):
    wd.read_experiment(tmp_path)
  with pytest.raises(wd.WorkdirError, match=str(tmp_path / wd.CONFIG)):
    wd.load_model(tmp_path)
  with pytest.raises(trainer.TrainError, match=str(tmp_path / wd.CONFIG)) as info:
    trainer.train(config.preset("smoke"), tmp_path, stream=open(os.devnull, "w"))
  assert str(info.value).count(str(tmp_path / wd.CONFIG)) == 1


def test_corrupt_or_foreign_weights_are_refused_naming_the_file(tmp_path):
  wd.write_experiment(tmp_path, config.preset("smoke"))
  best = tmp_path / wd.BEST_WEIGHTS
  best.write_bytes(b"not an HDF5 file")
  with pytest.raises(wd.WorkdirError, match=f"^{best}: "):
    wd.weights_path(tmp_path)
  with pytest.raises(wd.WorkdirError, match=f"^{best}: "):
    wd.load_model(tmp_path)
  # Whole HDF5, but of another network: Keras' message alone names no file.
  other = config.preset("smoke").model.replace(scale=4)
  from fgrn_tf.models.fgrn import FGRN
  FGRN(other).save_weights(tmp_path / "other.weights.h5")
  os.replace(tmp_path / "other.weights.h5", best)
  assert wd.weights_path(tmp_path) == best
  with pytest.raises(wd.WorkdirError, match=f"^{best}: "):
    wd.load_model(tmp_path)


def test_a_corrupt_backup_is_refused_naming_the_file(tmp_path):
  data = image_folder(tmp_path / "data")
  exp = _smoke(data, steps=4, steps_per_epoch=2)
  wd.write_experiment(tmp_path / "run", exp)
  backup = wd.backup_path(tmp_path / "run")
  backup.parent.mkdir()
  backup.write_bytes(b"\x89HDF\r\n\x1a\n then nothing")  # a write cut short
  with pytest.raises(trainer.TrainError, match=f"^{backup}: cannot resume"):
    trainer.train(exp, tmp_path / "run", stream=open(os.devnull, "w"))
  assert backup.read_bytes().endswith(b"then nothing")
