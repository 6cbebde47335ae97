"""Small builders shared by the tests."""

import pathlib
import sys

import forked_tools
import keras
import numpy as np

from fgrn_tf.config import OBJECTIVE_FIELDS, ModelConfig, Objective, smoke
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
  """The smoke network with `changes` to its config or its objective (by field name)."""
  keras.utils.set_random_seed(seed)
  objective = {k: changes.pop(k) for k in list(changes) if k in OBJECTIVE_FIELDS}
  model = FGRN(tiny_config(**changes), objective=Objective(**objective))
  if model.flow is not None:
    randomize_zero_convs(model.flow, seed)
  return model


def smooth_images(seed: int, sizes) -> list[np.ndarray]:
  """Photo-like uint8 RGB images: smooth random colour fields with a little noise."""
  import cv2

  rng = np.random.default_rng(seed)
  out = []
  for h, w in sizes:
    field = cv2.resize(rng.uniform(0, 255, (4, 5, 3)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    out.append(np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8))
  return out


CORRUPT_PNG = b"\x89PNG\r\n\x1a\n truncated"


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


def photo(h, w, seed=0, channels=3, dtype=np.uint8):
  """Smooth colours plus noise: a round trip of it is far from trivial and far from noise."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:h, 0:w].astype(np.float64)
  planes = [128 + 90 * np.sin(x / (7 + 3 * c) + y / (11 + c)) for c in range(channels)]
  image = np.stack(planes, -1) + rng.normal(0, 8, (h, w, channels))
  top = np.iinfo(dtype).max
  return np.clip(np.round(image * top / 255), 0, top).astype(dtype)


def write_model_dir(folder, seed: int = 2, scale: int = 2):
  """A training workdir (config + best weights) of the tiny model, for the tools' --model."""
  from fgrn_tf import config, workdir

  smoke = config.smoke()
  experiment = config.Experiment(smoke.model.replace(scale=scale), smoke.train)
  workdir.write_experiment(folder, experiment)
  tiny_model(seed=seed, scale=scale).save_weights(folder / workdir.BEST_WEIGHTS)
  return folder


def make_run(folder, data_dirs=(), training_leftovers: bool = True):
  """A training workdir of the tiny model (trained on `data_dirs`), with what a run leaves
  besides its best weights (last weights, backup/, tensorboard/, train_state.json): none of it
  may be lost to an export or a ship."""
  import dataclasses
  import shutil

  from fgrn_tf import workdir

  write_model_dir(folder, seed=0)
  if data_dirs:
    experiment = workdir.read_experiment(folder)
    workdir.write_experiment(folder, dataclasses.replace(
        experiment, train=experiment.train.replace(data_dirs=tuple(map(str, data_dirs)))))
  if training_leftovers:
    shutil.copy(folder / workdir.BEST_WEIGHTS, folder / workdir.LAST_WEIGHTS)
    (folder / "backup").mkdir()
    (folder / "backup" / "state.json").write_text('{"epoch": 3}')
    (folder / "tensorboard").mkdir()
    (folder / "tensorboard" / "events.out.tfevents.1").write_bytes(b"events")
    (folder / "train_state.json").write_text('{"step": 6}')
  return folder


def snapshot(folder) -> dict:
  """Every path under `folder` with its bytes (None for folders): to tell it was not touched."""
  return {p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes()
          for p in sorted(folder.rglob("*"))}


# What export and ship must refuse as their output, under the folder `refusal_tree` fills:
# case -> (the output folder, a word of the export's error, a word of ship's error).
REFUSED_OUTPUTS = {
    "the_workdir_itself": ("run", "--model", "workdir"),
    "inside_the_workdir": ("run/inside", "--model", "workdir"),
    "a_folder_holding_the_workdir": (".", "--model", "workdir"),
    "another_training_workdir": ("other_run", "training workdir", "training workdir"),
    "a_dataset": ("photos", "images", "images"),
    "a_folder_of_other_files": ("notes", "not an export", "not a shipped model"),
}


def refusal_tree(base, photos) -> None:
  """Under `base`: the run to read (run/), another run, a folder of `photos`, one of notes."""
  from fgrn_tf.data import images

  make_run(base / "run")
  make_run(base / "other_run")
  for i, image in enumerate(photos):
    images.write_image(base / "photos" / f"p{i}.jpg", image)
  (base / "notes").mkdir()
  (base / "notes" / "todo.txt").write_text("mine")


ROOT = pathlib.Path(__file__).resolve().parents[1]


def image_folder(folder, count=4, size=40) -> str:
  """`count` smooth colour gradients with a little noise as PNGs in `folder` (a training set a
  network can learn to rescale); returns the folder."""
  from fgrn_tf.data import images

  rng = np.random.default_rng(0)
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(count):
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20 * i
    image = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    images.write_image(folder / f"img{i}.png", image, overwrite=True)
  return str(folder)


def train_command(*args, timeout=None) -> list[str]:
  """`train_main.py ARGS` as a command (under `timeout -s KILL` when given), run from ROOT."""
  command = [sys.executable, "train_main.py", *args]
  return ["timeout", "-s", "KILL", str(timeout), *command] if timeout else command


def split_importtime(stderr: str) -> tuple[list[str], set[str]]:
  """The stderr of a `python -X importtime` run: its own lines, and the modules it imported
  (the interpreter writes their lines to fd 2, apart from Python's sys.stderr)."""
  lines = stderr.strip().splitlines()
  return ([line for line in lines if not line.startswith("import time:")],
          {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")})


def losses_on_a_fixed_batch(model, hr, steps: int) -> tuple[dict, dict]:
  """(logs of the first train step, logs of the step after `steps` more) on the batch `hr`.

  Runs the model's `train_step` as compiled, in graph mode unless `run_eagerly`: with the
  trainer's Adam (`steps.Adam`) the trace costs ~1.5 CPU-s for the tiny network, and an eager
  step ~0.35 s, so a graph pays for itself after ~5 steps."""
  first = model.train_on_batch(hr, return_dict=True)
  for _ in range(steps):
    model.train_on_batch(hr)
  model.reset_metrics()  # the logs are running means: the last step's own values
  return first, model.train_on_batch(hr, return_dict=True)


def export_every_format(base) -> dict:
  """`fgrn-export` of a run of the tiny model in every format into `base`/out: the paths, and
  what the tool printed. The run trained on a folder with a file that training skipped
  (int8_full calibrates on it); the check folder holds a corrupt file too. int8_full is kept
  whatever its quality on this random network, so that it can be tested; umask 022 is what a
  server's export job usually runs with (TF Serving must read the files)."""
  import os

  from fgrn_tf.data import images
  from fgrn_tf.export import exporter

  base = pathlib.Path(base)
  wd, check, out, train = base / "workdir", base / "check", base / "out", base / "train"
  for i, image in enumerate(smooth_images(1, [(40, 48), (32, 32), (36, 30)])):
    images.write_image(check / f"c{i}.png", image)
  (check / "c3.png").write_bytes(CORRUPT_PNG)
  for i, image in enumerate(smooth_images(2, [(48, 40), (40, 40)])):
    images.write_image(train / f"t{i}.png", image)
  (train / "t2_broken.png").write_bytes(CORRUPT_PNG)
  make_run(wd, data_dirs=[train], training_leftovers=False)
  proc = forked_tools.run(
      [sys.executable, "export/export_main.py", "--model", str(wd), "--output_dir", str(out),
       "--check_dir", str(check), "--check_crop", "0", "--max_int8_full_drop", "1000",
       "--formats", ",".join(exporter.FORMATS)], cwd=ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=900, umask=0o022)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return {"wd": wd, "out": out, "stdout": proc.stdout}

