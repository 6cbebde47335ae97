"""One interface over the ways a trained FGRN can be run: Keras, SavedModel, TFLite.

The command-line tool and the evaluation drive a `Backend`, so what is evaluated is what ships.
Every backend takes and returns uint8 batches `[N, H, W, 3]`; inputs to `downscale` have H and
W divisible by `scale` (callers pad: `fgrn_tf/tiling.py`). `load_backend(path)` picks the backend
from what `path` holds: a training workdir, a `.keras` file, an export folder (written by
`fgrn-export`), a SavedModel, one or two .tflite files.
"""

from __future__ import annotations

import abc
import json
import os
import pathlib
import struct
from collections.abc import Sequence

import numpy as np

from fgrn_tf.config import ModelConfig, Objective
from fgrn_tf.errors import FGRNError, UsageError, one_line
from fgrn_tf.models.image_batch import check_batch
from fgrn_tf.runtime import litert
from fgrn_tf.workdir import CONFIG, ModelNotFoundError, load_model

# TensorFlow and LiteRT are imported where a backend needs them: a .tflite pair runs without
# TensorFlow, and a refused command line is told before seconds of TensorFlow import.

# What the export writes and the backends read (fgrn_tf.export imports these names).
SIGNATURES = {"downscale": ("hr", "lr"), "upscale": ("lr", "hr")}  # half -> (input, output)
# The SavedModel's signatures on encoded images, for servers (`fgrn_tf.export.bytes_signatures`):
# TF Serving's REST API carries an input or output whose alias ends in `_bytes` as base64.
BYTES_SIGNATURES = {"downscale_bytes": ("hr_bytes", "lr_bytes"),
                    "upscale_bytes": ("lr_bytes", "hr_bytes")}
SERVING_DEFAULT = "upscale"
SAVED_MODEL_INFO = pathlib.Path("assets.extra") / "fgrn_model.json"
TFLITE_FILES = {"downscale": "downscaler.tflite", "upscale": "upscaler.tflite"}
MANIFEST = "manifest.json"
# A probe input side that most scales divide, for models that do not record their scale.
_PROBE_SIDE = 24


class ModelFileError(FGRNError, ValueError):
  """A model file is there but cannot be run: truncated, foreign, or not one of FGRN's halves."""


class MissingHalfError(FGRNError, ValueError):
  """A backend built from one .tflite file was asked for the half it does not hold."""


class Backend(abc.ABC):
  """A trained FGRN's two halves.

  Attributes:
    scale: the integer rescaling factor s.
    name: what runs it ("keras", "savedmodel", "tflite").
    model_config: the `ModelConfig` when the source records it (tiling uses its receptive
      field), else None.
    objective: the `Objective` it was trained with, when the source records it, else None.
  """

  scale: int
  name: str = "backend"
  model_config = None
  objective = None

  @abc.abstractmethod
  def downscale(self, hr: np.ndarray) -> np.ndarray:
    """uint8 `[N, H, W, 3]` -> uint8 `[N, H/s, W/s, 3]`."""

  @abc.abstractmethod
  def upscale(self, lr: np.ndarray) -> np.ndarray:
    """uint8 `[N, h, w, 3]` -> uint8 `[N, h*s, w*s, 3]`."""


class KerasBackend(Backend):
  """An in-memory `FGRN` (from a workdir or `.keras` file), traced once per input shape."""

  name = "keras"

  def __init__(self, model):
    import tensorflow as tf

    self.model = model
    self.scale = model.scale
    self.model_config = model.model_config
    self.objective = model.objective
    spec = tf.TensorSpec([None, None, None, 3], tf.uint8)
    self._down = tf.function(model.downscale, input_signature=[spec])
    self._up = tf.function(model.upscale, input_signature=[spec])

  def downscale(self, hr):
    return self._down(check_batch(hr, "downscale input", self.scale)).numpy()

  def upscale(self, lr):
    return self._up(check_batch(lr, "upscale input")).numpy()


def _config_from(info: dict | None) -> tuple[ModelConfig | None, Objective | None]:
  """The network and objective an export's info records (None, None when it does not)."""
  if not info or "model_config" not in info:
    return None, None
  return (ModelConfig.from_dict(info["model_config"]),
          Objective.of(info.get("objective"), info["model_config"]))


class SavedModelBackend(Backend):
  """The exported SavedModel's `downscale` and `upscale` signatures (what TF Serving runs)."""

  name = "savedmodel"

  def __init__(self, path):
    import tensorflow as tf

    self.path = pathlib.Path(path)
    if not (self.path / "saved_model.pb").is_file():
      raise ModelNotFoundError(f"{self.path}: not a SavedModel (no saved_model.pb)")
    try:
      self.loaded = tf.saved_model.load(str(self.path))
    except (OSError, ValueError, tf.errors.OpError) as e:  # protobuf and checkpoint readers
      raise ModelFileError(f"{self.path}: cannot load the SavedModel ({one_line(e)})") from None
    missing = [k for k in SIGNATURES if k not in self.loaded.signatures]
    if missing:
      raise ModelFileError(f"{self.path}: SavedModel has no {' or '.join(missing)} signature (has "
                       f"{sorted(self.loaded.signatures)}); export it with fgrn-export")
    info_path = self.path / SAVED_MODEL_INFO
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    self.model_config, self.objective = _config_from(info)
    self.scale = int(info["scale"]) if info else _probe_scale(self._run_up)

  def _run(self, half: str, images: np.ndarray) -> np.ndarray:
    key_in, key_out = SIGNATURES[half]
    return self.loaded.signatures[half](**{key_in: images})[key_out].numpy()

  def _run_up(self, lr):
    return self._run("upscale", lr)

  def downscale(self, hr):
    return self._run("downscale", check_batch(hr, "downscale input", self.scale))

  def upscale(self, lr):
    return self._run("upscale", check_batch(lr, "upscale input"))


def _half_of(content: bytes, origin: str) -> str:
  """"downscale" or "upscale": from the export's metadata, else the model's signature key."""
  try:
    info = litert.metadata(content)
  except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError, struct.error) as e:
    # a truncated or foreign file fails anywhere in the flatbuffer
    raise ModelFileError(f"{origin}: not a readable .tflite model ({e})") from None
  if info and info.get("half") in SIGNATURES:
    return info["half"]
  halves = [k for k in litert.signatures(content) if k in SIGNATURES]
  if len(halves) != 1:
    raise ModelFileError(f"{origin}: cannot tell which half of FGRN this .tflite holds (signatures "
                     f"{sorted(litert.signatures(content))}); export it with fgrn-export")
  return halves[0]


class _TFLiteHalf:
  """One .tflite half in the LiteRT interpreter, its input resized to each new image size."""

  def __init__(self, content: bytes, origin: str, num_threads: int | None):
    from ai_edge_litert.interpreter import Interpreter

    self.origin = origin
    self.info = litert.metadata(content)
    self.half = _half_of(content, origin)
    try:
      self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
    except (ValueError, RuntimeError) as e:  # LiteRT's verifier refuses the flatbuffer
      raise ModelFileError(f"{origin}: not a runnable .tflite model ({one_line(e)})") from None
    inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1 or inputs[0]["dtype"] != np.uint8:
      raise ModelFileError(f"{origin}: expected one uint8 image input and one output")
    self._in, self._out = inputs[0]["index"], outputs[0]["index"]
    self._shape = None

  def __call__(self, images: np.ndarray) -> np.ndarray:
    if images.shape != self._shape:
      # Dynamic H and W: the tensors are re-planned for each new input shape.
      self.interpreter.resize_tensor_input(self._in, images.shape, strict=False)
      self.interpreter.allocate_tensors()
      self._shape = images.shape
    self.interpreter.set_tensor(self._in, np.ascontiguousarray(images))
    self.interpreter.invoke()
    return self.interpreter.get_tensor(self._out).copy()


class TFLiteBackend(Backend):
  """downscaler.tflite and/or upscaler.tflite run with the LiteRT interpreter (as on a phone).

  Args:
    downscaler, upscaler: paths of the two halves (either may be None; the missing half then
      raises MissingHalfError).
    num_threads: interpreter threads (None: LiteRT's default).
    scale: only for .tflite files without the export's metadata (then probed when omitted).
  """

  name = "tflite"

  def __init__(self, downscaler=None, upscaler=None, num_threads: int | None = None,
               scale: int | None = None):
    self.halves: dict[str, _TFLiteHalf] = {}
    for role, path in (("downscale", downscaler), ("upscale", upscaler)):
      if path is None:
        continue
      half = _TFLiteHalf(_read(path), str(path), num_threads)
      if half.half != role:
        raise ModelFileError(f"{path} holds the {half.half} half of FGRN, passed as the {role}r")
      self.halves[role] = half
    if not self.halves:
      raise ModelFileError("TFLiteBackend needs downscaler.tflite, upscaler.tflite or both")
    infos = [h.info for h in self.halves.values() if h.info]
    self.model_config, self.objective = _config_from(infos[0] if infos else None)
    scales = {int(i["scale"]) for i in infos if "scale" in i}
    if len(scales) > 1:
      raise ModelFileError(f"the two .tflite files are of different scales {sorted(scales)}")
    if scales:
      self.scale = scales.pop()
    elif scale is not None:
      self.scale = int(scale)
    else:
      self.scale = _probe_scale(self.halves.get("upscale"), self.halves.get("downscale"))

  @classmethod
  def from_files(cls, paths: Sequence, **kwargs) -> TFLiteBackend:
    """A backend from one or two .tflite files in any order (each file says its half)."""
    roles = {}
    for path in paths:
      half = _half_of(_read(path), str(path))
      if half in roles:
        raise ModelFileError(f"{roles[half]} and {path} both hold the {half} half")
      roles[half] = path
    return cls(roles.get("downscale"), roles.get("upscale"), **kwargs)

  def _half(self, half: str) -> _TFLiteHalf:
    if half not in self.halves:
      (have, path), = ((k, v.origin) for k, v in self.halves.items())
      # Read by command-line users (--model) as well as callers of load_backend: it names what
      # to give, as a path either accepts ("down.tflite,up.tflite" is a pair for both).
      other = pathlib.Path(path).with_name(TFLITE_FILES[half])
      pair = (other, path) if half == "downscale" else (path, other)
      raise MissingHalfError(
          f"{path} holds only the {have} half of FGRN, not the {half}r: to {half}, give both "
          f"files ({pair[0]},{pair[1]}), the folder holding them, or the export folder")
    return self.halves[half]

  def downscale(self, hr):
    run = self._half("downscale")
    return run(check_batch(hr, "downscale input", self.scale))

  def upscale(self, lr):
    run = self._half("upscale")
    return run(check_batch(lr, "upscale input"))


def _read(path) -> bytes:
  path = pathlib.Path(path)
  if not path.is_file():
    raise ModelNotFoundError(f"{path}: no such .tflite file")
  return path.read_bytes()


def _probe_scale(up=None, down=None) -> int:
  """The scale of a model that does not record it, from the size of one output."""
  side = _PROBE_SIDE
  if up is not None:
    return int(up(np.zeros((1, side, side, 3), np.uint8)).shape[1]) // side
  out = int(down(np.zeros((1, side, side, 3), np.uint8)).shape[1])
  if out < 1 or side % out:
    raise ModelFileError("cannot tell the scale of this downscaler; pass scale=")
  return side // out


def _saved_model_dir(folder: pathlib.Path) -> pathlib.Path | None:
  """`folder` if it is a SavedModel, or its newest numbered version (a TF Serving base path)."""
  if (folder / "saved_model.pb").is_file():
    return folder
  versions = [p for p in folder.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
  return max(versions, key=lambda p: int(p.name)) if versions else None


def _from_export(folder: pathlib.Path, artifact: str | None, num_threads: int | None) -> Backend:
  try:
    manifest = json.loads((folder / MANIFEST).read_text())
  except (OSError, ValueError) as e:
    raise ModelFileError(f"{folder / MANIFEST}: cannot be read ({one_line(e)})") from None
  artifacts = manifest.get("artifacts", {})
  available = [k for k, v in artifacts.items() if "skipped" not in v]
  if artifact is None:
    artifact = next((k for k in ("savedmodel", "tflite_float32") if k in available),
                    available[0] if available else None)
  if artifact not in available:
    raise ModelFileError(f"{folder}: export holds no {artifact} artifact (holds "
                     f"{', '.join(available) or 'none'})")
  entry = artifacts[artifact]
  if artifact == "savedmodel":
    return SavedModelBackend(folder / entry["path"])
  files = entry["files"]
  return TFLiteBackend(folder / files["downscale"]["path"], folder / files["upscale"]["path"],
                       num_threads=num_threads)


def load_backend(path, *, artifact: str | None = None, num_threads: int | None = None,
                 precision: str = "float32") -> Backend:
  """The backend for what `path` holds.

  Args:
    path: a training workdir (config.json + weights) or a `.keras` file (Keras); an export
      folder with manifest.json; a SavedModel folder, or a TF Serving base path holding
      numbered versions (the newest is loaded); a .tflite file (one half only), a folder with
      downscaler.tflite / upscaler.tflite, or two .tflite files as a pair (a sequence, or one
      string "a.tflite,b.tflite").
    artifact: for an export folder, which artifact to run: "savedmodel" (default),
      "tflite_float32", "tflite_float16", "tflite_int8", "tflite_int8_full".
    num_threads: interpreter threads for TFLite (Keras and SavedModel use TF's settings).
    precision: the dtype policy a Keras model computes in (`fgrn_tf.models.precision`); exports have
      theirs fixed at export time, so anything but float32 is refused for them.

  Raises:
    ModelNotFoundError: `path` holds none of these.
    UsageError: `precision` other than float32 for a model that is not a Keras one.
  """
  if isinstance(path, (str, os.PathLike)) and "," in str(path) and str(path).endswith(".tflite"):
    path = str(path).split(",")
  keras_model = not isinstance(path, (list, tuple)) and (
      pathlib.Path(path).suffix == ".keras" or (pathlib.Path(path) / CONFIG).is_file())
  if precision != "float32" and not keras_model and not (
      isinstance(path, os.PathLike | str) and not pathlib.Path(path).exists()):
    raise UsageError(f"{path}: precision {precision} applies to Keras models (a training "
                     f"workdir or a .keras file); an export computes as it was exported")
  if isinstance(path, (list, tuple)):
    if not 1 <= len(path) <= 2 or not all(str(p).endswith(".tflite") for p in path):
      raise ModelNotFoundError(f"{path}: a pair must be two .tflite files")
    return TFLiteBackend.from_files([pathlib.Path(p) for p in path], num_threads=num_threads)
  path = pathlib.Path(path)
  if not path.exists():
    raise ModelNotFoundError(f"{path}: no such file or folder")
  if path.is_file():
    if path.suffix == ".keras":
      return KerasBackend(load_model(path, precision))
    if path.suffix == ".tflite":
      return TFLiteBackend.from_files([path], num_threads=num_threads)
    raise ModelNotFoundError(f"{path}: not a model file (expected .keras or .tflite)")
  if (path / CONFIG).is_file():
    return KerasBackend(load_model(path, precision))
  if (path / MANIFEST).is_file():
    return _from_export(path, artifact, num_threads)
  saved_model = _saved_model_dir(path)
  if saved_model is not None:
    return SavedModelBackend(saved_model)
  pair = [path / name for name in TFLITE_FILES.values() if (path / name).is_file()]
  if pair:
    return TFLiteBackend.from_files(pair, num_threads=num_threads)
  raise ModelNotFoundError(
      f"{path}: holds no model (looked for {CONFIG}, {MANIFEST}, saved_model.pb, "
      f"{' or '.join(TFLITE_FILES.values())})")
