"""Finding and opening a trained FGRN: the one set of rules every tool follows.

`--model` names a training workdir, a `.keras` file, an export folder, a SavedModel (or a TF
Serving base path), a `.tflite` file or folder, a `.tflite` pair written `down.tflite,
up.tflite`, or a bundled model by its name (`codec_x2`; a path that exists wins over a name); no
`--model` means the bundled `fgrn_x<s>` of the scale asked for (default 2). The scale
and the smallest tile are checked from the model's files before it loads where they say them
(a workdir's config.json, an export's manifest.json), and from the loaded model otherwise.
"""

from __future__ import annotations

import json
import os
import pathlib

from fgrn_tf import config, workdir
from fgrn_tf.errors import UsageError
from fgrn_tf.models import receptive_field
from fgrn_tf.runtime import backends, shipped

ModelSpec = pathlib.Path | list[pathlib.Path]


def model_spec(model, scale: int | None = None) -> ModelSpec:
  """What `model` names: a path, a `.tflite` pair, a bundled model's name, or (None) the
  bundled model of `scale`.

  Raises:
    UsageError: no model given and none bundled for the scale, a path that does not exist and
      is no bundled model's name, or a comma-separated name that is not two `.tflite` files.
  """
  if model is None or str(model) == "":
    path = shipped.default_model_path(scale or 2)
    if not path.exists():
      raise UsageError(f"no --model given and no shipped model for x{scale or 2} at {path}: "
                       f"train one with `python train_main.py` and pass its workdir as --model")
    return path
  if isinstance(model, list | tuple):
    parts = [str(p) for p in model]
  else:
    parts = str(model).split(",") if "," in str(model) else [str(model)]
  if len(parts) > 1:
    if len(parts) != 2 or not all(p.strip().endswith(".tflite") for p in parts):
      raise UsageError(f"--model {','.join(parts)}: a pair is two .tflite files joined by a "
                       f"comma (downscaler.tflite,upscaler.tflite)")
    spec = [pathlib.Path(p.strip()).expanduser() for p in parts]
  else:
    spec = pathlib.Path(parts[0]).expanduser()
    if not spec.exists() and _is_name(parts[0]):
      return _bundled(parts[0])
  for path in spec if isinstance(spec, list) else [spec]:
    if not path.exists():
      raise UsageError(f"--model {path}: no such file or folder")
  return spec


def _is_name(text: str) -> bool:
  """A bare word such as `codec_x2`, not a path (no folder separator)."""
  return bool(text) and "/" not in text and os.sep not in text and text not in (".", "..")


def _bundled(name: str) -> pathlib.Path:
  """The folder of the bundled model `name`; UsageError listing the known names otherwise."""
  known = shipped.names()
  if name not in known:
    raise UsageError(f"--model {name}: no such file or folder, nor a bundled model (bundled: "
                     f"{', '.join(known) or 'none'}; `fgrn models` describes them)")
  return shipped.model_dir(name)


def describe(spec: ModelSpec) -> str:
  """`spec` as the user wrote it, for messages."""
  return ",".join(map(str, spec)) if isinstance(spec, list) else str(spec)


def peek(spec: ModelSpec) -> tuple[int, config.ModelConfig | None] | None:
  """(scale, `ModelConfig` or None) that a model's files state, read without loading it.

  A training workdir's config.json, or an export's manifest.json. None where neither says (a
  .keras, SavedModel or .tflite file: their scale is known once loaded) or they cannot be read
  (loading then says what is wrong).
  """
  if isinstance(spec, list):
    return None
  try:
    if (spec / workdir.CONFIG).is_file():
      model = workdir.read_experiment(spec).model
      return model.scale, model
    if (spec / backends.MANIFEST).is_file():
      info = json.loads((spec / backends.MANIFEST).read_text())
      model = info.get("model_config")
      return int(info["scale"]), None if model is None else config.ModelConfig.from_dict(model)
  except (OSError, ValueError, KeyError, TypeError):  # foreign or damaged: loading will tell
    return None
  return None


def check(spec: ModelSpec, scale: int, model_config, asked: int | None, tile: int = 0) -> None:
  """Refuses a model of another scale than `asked`, or a `tile` below its smallest.

  Args:
    spec: the model, for the message.
    scale, model_config: what the model is (`model_config` None: not known, the default
      margins apply).
    asked: the scale the user asked for (None: any).
    tile: the tile side asked for (0: whole images).
  """
  if asked is not None and scale != asked:
    raise UsageError(f"model {describe(spec)} is x{scale} but --scale {asked} was asked for")
  smallest = receptive_field.min_tile(scale, model_config)
  if tile and tile < smallest:
    raise UsageError(f"--tile {tile} is too small for this model (x{scale}): use at least "
                     f"{smallest}, or 0 for whole images")


def open_model(spec: ModelSpec, asked: int | None = None, *, tile: int = 0,
               precision: str = "float32", artifact: str | None = None,
               num_threads: int | None = None) -> backends.Backend:
  """Loads the model (seconds), refusing first what its files say (`peek`), then what only the
  loaded model tells.

  Args:
    spec: from `model_spec`.
    asked: the scale asked for (None: any).
    tile, precision, artifact, num_threads: as for `check` and `backends.load_backend`.

  Raises:
    FGRNError: nothing loadable there (`ModelNotFoundError`), an unusable file
      (`ModelFileError`, `WorkdirError`), or a refusal of `check`.
  """
  peeked = peek(spec)
  if peeked is not None:
    check(spec, *peeked, asked, tile)
  backend = backends.load_backend(spec, precision=precision, artifact=artifact,
                                  num_threads=num_threads)
  check(spec, backend.scale, receptive_field.model_config_of(backend), asked, tile)
  return backend
