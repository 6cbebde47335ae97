"""The training workdir: what a run leaves behind, its progress record, its lock, and loading a
model from it.

Layout (written by `train.trainer`, read by evaluation, export and the command-line tool):
  config.json           the Experiment (network, training recipe, objective) as JSON
  best.weights.h5       weights with the best validation PSNR so far
  last.weights.h5       weights at the end of the last finished epoch
  train_state.json      step, best/last validation PSNR, training time over all sittings, backend
  history.jsonl         one line per epoch: step, time, losses, gradient norm, validation PSNRs;
                        and where a resumed run changed its settings, a line saying which
  backup/               weights + Adam state + step for resuming (not for inference)
  tensorboard/          summaries
  train.lock            held (flock) by the run training in it; says which process that is
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
import zipfile

import numpy as np

from fgrn_tf import files
from fgrn_tf.config import Experiment
from fgrn_tf.errors import FGRNError, one_line

CONFIG = "config.json"
BEST_WEIGHTS = "best.weights.h5"
LAST_WEIGHTS = "last.weights.h5"
STATE = "train_state.json"
HISTORY = "history.jsonl"
BACKUP = "backup"
BACKUP_WEIGHTS = "latest.weights.h5"  # the chief's; worker i keeps worker<i>.weights.h5
TENSORBOARD = "tensorboard"
LOCK = "train.lock"
# Where an HDF5 superblock may start (a user block moves it to a power of two >= 512).
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)


class ModelNotFoundError(FGRNError, FileNotFoundError):
  """A path names no trained model (with one line on what was looked for)."""


class WorkdirError(FGRNError, ValueError):
  """A workdir file is there but unusable (corrupt, truncated, another network's); the
  one-line message starts with the file's path."""


class WorkdirBusyError(FGRNError, RuntimeError):
  """Another process holds the workdir's lock (the message says which)."""


def read_experiment(workdir) -> Experiment:
  path = pathlib.Path(workdir) / CONFIG
  if not path.is_file():
    raise ModelNotFoundError(f"{workdir}: not a training workdir (no {CONFIG})")
  try:
    return Experiment.from_json(path.read_text())
  except OSError as e:
    raise WorkdirError(f"{path}: cannot read ({e.strerror or e})") from None
  except UnicodeDecodeError:
    raise WorkdirError(f"{path}: not a config file (not UTF-8 text)") from None
  except json.JSONDecodeError as e:
    raise WorkdirError(f"{path}: not a config file (invalid JSON: {e})") from None
  except KeyError as e:
    raise WorkdirError(f"{path}: not an FGRN config (no {e.args[0]!r} entry)") from None
  except (TypeError, ValueError, AttributeError) as e:
    raise WorkdirError(f"{path}: not an FGRN config ({e})") from None


def write_experiment(workdir, experiment: Experiment) -> None:
  """Writes config.json atomically (OSError names config.json, never a temporary file)."""
  files.write_text(pathlib.Path(workdir) / CONFIG, experiment.to_json())


def backup_path(workdir, chief: bool = True, worker_index: int = 0) -> pathlib.Path:
  """The resumable state (weights + Adam + step) one process of a run writes."""
  name = BACKUP_WEIGHTS if chief else f"worker{worker_index}.weights.h5"
  return pathlib.Path(workdir) / BACKUP / name


def read_state(workdir) -> dict:
  """train_state.json's record ({} when there is none or it cannot be read)."""
  path = pathlib.Path(workdir) / STATE
  if not path.is_file():
    return {}
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return {}


def write_state(workdir, state: dict) -> None:
  files.write_json(pathlib.Path(workdir) / STATE, state)


def append_history(workdir, line: dict) -> None:
  """One JSON line at the end of history.jsonl (a line lost to a crash loses one epoch's
  figures, never the weights)."""
  with open(pathlib.Path(workdir) / HISTORY, "a") as f:
    f.write(json.dumps(line) + "\n")


def _check_weights_file(path: pathlib.Path) -> None:
  """WorkdirError unless `path` starts like an HDF5 file: a cheap test, before TensorFlow."""
  try:
    with open(path, "rb") as f:
      head = f.read(_HDF5_OFFSETS[-1] + len(_HDF5_SIGNATURE))
  except OSError as e:
    raise WorkdirError(f"{path}: cannot read ({e.strerror or e})") from None
  if not head:
    raise WorkdirError(f"{path}: empty file (not Keras weights)")
  if not any(head[o:o + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS):
    raise WorkdirError(f"{path}: not a Keras weights file (no HDF5 signature; corrupt or "
                       "truncated)")


# What Keras, h5py, zipfile and JSON raise for a damaged or foreign model file (h5py: OSError;
# a .keras archive: BadZipFile; layers and configs that do not match: ValueError, KeyError,
# TypeError). Anything else is a bug and keeps its traceback.
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile)


def weights_path(workdir) -> pathlib.Path:
  """The weights inference should use: best by validation PSNR, else the last saved.

  Raises ModelNotFoundError when there are none and WorkdirError when the file is not HDF5
  (never falls back to the other file: a corrupt best must not pass silently)."""
  workdir = pathlib.Path(workdir)
  for name in (BEST_WEIGHTS, LAST_WEIGHTS):
    if (workdir / name).is_file():
      _check_weights_file(workdir / name)
      return workdir / name
  raise ModelNotFoundError(f"{workdir}: no trained weights ({BEST_WEIGHTS} or {LAST_WEIGHTS})")


def load_model(path, precision: str = "float32"):
  """Loads an FGRN from a training workdir (config.json + weights) or a `.keras` file, to
  compute in `precision` (`fgrn_tf.models.precision`; the weights are float32 whatever it was
  trained in).

  Raises ModelNotFoundError (nothing there) or WorkdirError (a file there is unusable; the
  message starts with its path: Keras' and h5py's own messages name no file)."""
  # The network brings TensorFlow: a workdir is read for its config without it.
  import keras

  from fgrn_tf.models.fgrn import FGRN

  path = pathlib.Path(path)
  if path.suffix == ".keras":
    if not path.is_file():
      raise ModelNotFoundError(f"{path}: no such model file")
    try:
      model = keras.models.load_model(path, compile=False)
    except LOAD_ERRORS as e:
      raise WorkdirError(f"{path}: cannot load the model ({one_line(e)})") from None
    if model.precision == precision:
      return model
    again = FGRN(model.model_config, precision=precision, objective=model.objective)
    again.set_weights(model.get_weights())
    return again
  experiment = read_experiment(path)
  model = FGRN(experiment.model, precision=precision, objective=experiment.objective)
  weights = weights_path(path)
  try:
    model.load_weights(weights)
  except LOAD_ERRORS as e:
    raise WorkdirError(f"{weights}: cannot load into the network of {path / CONFIG} "
                       f"({one_line(e)})") from None
  return model


def half_precision_weights(src: pathlib.Path, dst: pathlib.Path) -> None:
  """Copies a Keras .weights.h5 file with its float32 arrays stored as float16 (shipped
  models and GPU runs' results; Keras casts them back to float32 when loading)."""
  import h5py

  with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
    for key, value in fin.attrs.items():
      fout.attrs[key] = value

    def copy(name, obj):
      if isinstance(obj, h5py.Dataset):
        data = obj[()]
        if isinstance(data, np.ndarray) and data.dtype == np.float32:
          data = data.astype(np.float16)
        out = fout.create_dataset(name, data=data)
      else:
        out = fout.require_group(name)
      for key, value in obj.attrs.items():
        out.attrs[key] = value

    fin.visititems(copy)


# ---- the lock ------------------------------------------------------------------------------------

def _holder(path: pathlib.Path) -> str:
  try:
    info = json.loads(path.read_text())
    return f"pid {info['pid']} on {info['host']}, started {info['started']}"
  except (OSError, ValueError, KeyError, TypeError):
    # Taken a moment ago and not yet filled in, or written by something else.
    return "a process that has not said who it is"


def check_free(workdir, name: str = LOCK) -> None:
  """Raises WorkdirBusyError if another process holds `workdir`'s lock now; creates nothing.

  For a tool that can say so before its slow imports; the lock taken afterwards still settles
  a race between two runs that both passed this check.
  """
  if (pathlib.Path(workdir) / name).is_file():
    with lock(workdir, name):
      pass


@contextlib.contextmanager
def lock(workdir, name: str = LOCK):
  """Holds an exclusive flock on `workdir/name` for the duration (creating the workdir).

  The kernel drops the lock when the holder exits, however it dies, so a run killed with
  SIGKILL never blocks the next. The file stays (unlinking it would let a waiting process lock
  an orphaned inode while a third locks a new file) and tells a refused run who holds it.
  A workdir this call created is removed again if nothing but the lock file was put in it.

  Raises:
    WorkdirBusyError: another process (or another open of this one) holds the lock.
    OSError: the workdir or the lock file cannot be made (naming the path).
  """
  workdir = pathlib.Path(workdir)
  path = workdir / name
  created = not workdir.exists()
  workdir.mkdir(parents=True, exist_ok=True)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise OSError(e.errno, os.strerror(e.errno), str(path)) from None
      raise WorkdirBusyError(f"{workdir} is in use by another training run ({_holder(path)}; "
                             f"lock {path}): wait for it to end or stop it") from None
    try:
      same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
      same = False
    if same:
      break
    os.close(fd)  # locked a file its holder removed on the way out: lock the current one
  try:
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "started": started}) + "\n").encode())
    yield path
  finally:
    if created:
      with contextlib.suppress(OSError):
        if os.listdir(workdir) == [name]:
          path.unlink()
          workdir.rmdir()
    os.close(fd)
