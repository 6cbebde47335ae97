"""FGRN as a SavedModel for TF Serving: `downscale` and `upscale` signatures on uint8 images.

Layout: `<base>/<model_name>/<version>/` (what `tensorflow_model_server --model_base_path=
<base>/<model_name>` serves). Signatures (dynamic N, H, W; `serving_default` = `upscale`):
  downscale: {"hr": uint8 [N, H, W, 3]} -> {"lr": uint8 [N, H/s, W/s, 3]}; H and W multiples
             of s, else INVALID_ARGUMENT "... must be multiples of the scale s"
  upscale:   {"lr": uint8 [N, h, w, 3]} -> {"hr": uint8 [N, h*s, w*s, 3]}
`assets.extra/fgrn_model.json` holds the scale and model config (TF Serving ignores the folder).
"""

from __future__ import annotations

import pathlib

from fgrn_tf import files
from fgrn_tf.export import folders
from fgrn_tf.runtime.backends import SAVED_MODEL_INFO, SERVING_DEFAULT, SIGNATURES

# The --formats name of the SavedModel.
FORMAT = "savedmodel"


def serving_dir(base, model_name: str, version: int) -> pathlib.Path:
  """`<base>/<model_name>/<version>`, the folder TF Serving loads a version from."""
  if not model_name or "/" in model_name or model_name in (".", ".."):
    raise ValueError(f"model name must be a plain folder name, got {model_name!r}")
  if int(version) < 1:
    raise ValueError(f"version must be a positive integer, got {version!r}")
  return pathlib.Path(base) / model_name / str(int(version))


def write(model, path, overwrite: bool = False) -> pathlib.Path:
  """Writes `model` (an `FGRN`) as a SavedModel at `path`.

  The SavedModel is built in a temporary folder beside `path` and renamed into place, so a
  failed export never leaves a half-written version for TF Serving to pick up.

  Args:
    model: a trained `FGRN`.
    path: the version folder to write.
    overwrite: replace an existing `path` (else FileExistsError).

  Returns:
    `path`.
  """
  import keras
  import tensorflow as tf

  path = pathlib.Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path}: exists (pass --overwrite to replace it)")
  archive = keras.export.ExportArchive()
  archive.track(model)
  for name, (key_in, key_out) in SIGNATURES.items():
    archive.add_endpoint(name, _endpoint(getattr(model, name), key_out),
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, key_in)])
  key_in, key_out = SIGNATURES[SERVING_DEFAULT]
  archive.add_endpoint("serving_default", _endpoint(getattr(model, SERVING_DEFAULT), key_out),
                       input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, key_in)])

  def build(stage: pathlib.Path) -> None:
    archive.write_out(str(stage), verbose=False)
    files.write_json(stage / SAVED_MODEL_INFO, {
        "scale": model.scale, "model_config": model.model_config.to_dict(),
        "objective": model.objective.to_dict(),
        "signatures": {k: list(v) for k, v in SIGNATURES.items()},
        "serving_default": SERVING_DEFAULT})

  folders.build_in_place(path, build)
  return path


def _endpoint(method, key_out):
  # A dict output names the signature's output tensor ("lr"/"hr" instead of "output_0").
  return lambda images: {key_out: method(images)}
