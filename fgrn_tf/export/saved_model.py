"""FGRN as a SavedModel for TF Serving: signatures on uint8 images and on encoded images.

Layout: `<base>/<model_name>/<version>/` (what `tensorflow_model_server --model_base_path=
<base>/<model_name>` serves). Signatures (dynamic N, H, W; `serving_default` = `upscale`):
  downscale: {"hr": uint8 [N, H, W, 3]} -> {"lr": uint8 [N, H/s, W/s, 3]}; H and W multiples
             of s, else INVALID_ARGUMENT "... must be multiples of the scale s"
  upscale:   {"lr": uint8 [N, h, w, 3]} -> {"hr": uint8 [N, h*s, w*s, 3]}
  downscale_bytes, upscale_bytes: string [N] of PNG/JPEG/BMP/WebP files -> string [N] of
             files, tiled, with a pixel cap (`bytes_signatures`)
The uint8 ones run the whole image at once (TFLite is converted from them); the bytes ones are
for servers. `assets.extra/fgrn_model.json` holds the scale, model config and serving options
(TF Serving ignores the folder).
"""

from __future__ import annotations

import pathlib

from fgrn_tf import files
from fgrn_tf.export import folders
from fgrn_tf.export.bytes_signatures import BUILDERS, ServingOptions
from fgrn_tf.runtime.backends import (
  BYTES_SIGNATURES,
  SAVED_MODEL_INFO,
  SERVING_DEFAULT,
  SIGNATURES,
)

# The --formats name of the SavedModel.
FORMAT = "savedmodel"


def serving_dir(base, model_name: str, version: int) -> pathlib.Path:
  """`<base>/<model_name>/<version>`, the folder TF Serving loads a version from."""
  if not model_name or "/" in model_name or model_name in (".", ".."):
    raise ValueError(f"model name must be a plain folder name, got {model_name!r}")
  if int(version) < 1:
    raise ValueError(f"version must be a positive integer, got {version!r}")
  return pathlib.Path(base) / model_name / str(int(version))


def write(model, path, overwrite: bool = False, serving: ServingOptions | None = None,
          for_servers: bool = True) -> pathlib.Path:
  """Writes `model` (an `FGRN`) as a SavedModel at `path`.

  The SavedModel is built in a temporary folder beside `path` and renamed into place, so a
  failed export never leaves a half-written version for TF Serving to pick up.

  Args:
    model: a trained `FGRN`.
    path: the version folder to write.
    overwrite: replace an existing `path` (else FileExistsError).
    serving: the bytes signatures' tile, pixel cap and LR format (default: ServingOptions()).
    for_servers: with the bytes signatures; without them, the SavedModel is only what TFLite
      is converted from (they take most of the time to write and to load it).

  Returns:
    `path`.
  """
  import tensorflow as tf

  path = pathlib.Path(path)
  serving = serving or ServingOptions()
  serving.check(model.scale, model.model_config)
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path}: exists (pass --overwrite to replace it)")
  images = {key_in: tf.TensorSpec([None, None, None, 3], tf.uint8, key_in)
            for key_in, _ in SIGNATURES.values()}
  signatures = {name: _trace(_endpoint(getattr(model, name), key_out), images[key_in])
                for name, (key_in, key_out) in SIGNATURES.items()}
  signatures["serving_default"] = signatures[SERVING_DEFAULT]
  with_bytes = BYTES_SIGNATURES if for_servers else {}
  for name, (key_in, _) in with_bytes.items():
    signatures[name] = _trace(BUILDERS[name](model, serving),
                              tf.TensorSpec([None], tf.string, key_in))
  root = _root(signatures)

  def build(stage: pathlib.Path) -> None:
    tf.saved_model.save(root, str(stage), signatures=signatures)
    files.write_json(stage / SAVED_MODEL_INFO, {
        "scale": model.scale, "model_config": model.model_config.to_dict(),
        "objective": model.objective.to_dict(),
        "signatures": {k: list(v) for k, v in {**SIGNATURES, **with_bytes}.items()},
        "serving_default": SERVING_DEFAULT, "serving": serving.describe(model.scale)})

  folders.build_in_place(path, build)
  return path


def _trace(fn, spec):
  import tensorflow as tf

  return tf.function(fn, input_signature=[spec], autograph=False).get_concrete_function()


def _root(signatures: dict):
  """What the SavedModel's object graph holds: the variables the signatures read, and each
  signature as a concrete function (`loaded.upscale(lr=...)` works as on Keras' export).

  Keras' ExportArchive keeps each endpoint as a `tf.function`, which `tf.saved_model.save`
  traces a second time (its cache is keyed on being inside a save) and stores twice: one
  trace each halves the time to write and to load the SavedModel, and so each TFLite
  conversion from it."""
  import tensorflow as tf

  root = tf.Module()
  used = {}
  for fn in signatures.values():
    used.update((id(v), v) for v in fn.variables)
  root.weights_used = list(used.values())
  for name, fn in signatures.items():
    if name != "serving_default":
      setattr(root, name, fn)
  return root


def _endpoint(method, key_out):
  # A dict output names the signature's output tensor ("lr"/"hr" instead of "output_0").
  return lambda images: {key_out: method(images)}
