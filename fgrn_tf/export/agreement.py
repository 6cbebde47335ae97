"""How closely an exported artifact reproduces the Keras model, and the gates that judge it.

Every artifact is run on the check images next to Keras: the largest uint8 difference on the
same input, and the round-trip PSNR (Y, border = scale) against Keras's. The float32 artifacts
must agree within `EXACT_LEVELS`; full-integer int8 ships only within `max_drop` dB.
"""

from __future__ import annotations

import pathlib

import numpy as np

from fgrn_tf.export import ExportError
from fgrn_tf.metrics.psnr_ssim import psnr_y

# Artifacts that compute what Keras computes in float32. Their kernels sum in another order, and
# a value that lands on the other side of a rounding step inside the model (x = Q(Gd(y)), the
# snap of F^-1(lr)) moves the output by a level or two: the paper-sized x2 network, untrained,
# gave 2 on Set5. A broken conversion (e.g. the NaN of unfrozen variables) is off by tens.
EXACT_FORMATS = ("savedmodel", "tflite_float32")
EXACT_LEVELS = 4
# Full-integer int8 ships only if its round trip loses at most this much PSNR against Keras.
DEFAULT_MAX_INT8_FULL_DROP_DB = 1.0
INT8_FULL = "tflite_int8_full"


def _absdiff(a: np.ndarray, b: np.ndarray) -> int:
  if a.shape != b.shape:
    raise ExportError(f"output shape {a.shape} differs from Keras {b.shape}")
  return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def _mean_psnr(values: list[float]) -> float:
  finite = [min(v, 100.0) for v in values]  # identical images give inf; 100 dB stands for it
  return round(float(np.mean(finite)), 3)


def reference(keras_backend, images) -> list[tuple[np.ndarray, np.ndarray]]:
  """Keras's (LR, round-trip HR) per check image: what every artifact is compared with."""
  out = []
  for _, hr in images:
    lr = keras_backend.downscale(hr[None])[0]
    out.append((lr, keras_backend.upscale(lr[None])[0]))
  return out


def agreement(backend, images, ref, scale: int) -> dict:
  """How closely `backend` reproduces Keras on the check set.

  Args:
    backend: the artifact, as a `fgrn_tf.runtime.backends.Backend`.
    images: (name, uint8 HR `[H, W, 3]`) check images.
    ref: `reference(keras, images)`.
    scale: the model's scale (the PSNR's border).

  Returns:
    downscale_max_abs_diff / upscale_max_abs_diff: largest difference in uint8 levels from
      Keras on the same input (the upscaler is fed Keras's LR); roundtrip_psnr_y: mean PSNR
      (Y, border `scale`) of HR -> this downscale -> this upscale; keras_roundtrip_psnr_y the
      same through Keras; psnr_drop_db their difference.
  """
  down = up = 0
  own, keras = [], []
  for (_, hr), (lr_k, sr_k) in zip(images, ref, strict=True):
    lr = backend.downscale(hr[None])[0]
    down = max(down, _absdiff(lr, lr_k))
    up = max(up, _absdiff(backend.upscale(lr_k[None])[0], sr_k))
    own.append(psnr_y(hr, backend.upscale(lr[None])[0], crop_border=scale))
    keras.append(psnr_y(hr, sr_k, crop_border=scale))
  own_psnr, keras_psnr = _mean_psnr(own), _mean_psnr(keras)
  return {"downscale_max_abs_diff": down, "upscale_max_abs_diff": up,
          "roundtrip_psnr_y": own_psnr, "keras_roundtrip_psnr_y": keras_psnr,
          "psnr_drop_db": round(keras_psnr - own_psnr, 3)}


def check_exact(artifacts: dict) -> None:
  """Fails the export (ExportError) when a float32 artifact differs from Keras by more than
  `EXACT_LEVELS`: the conversion is broken."""
  for name in EXACT_FORMATS:
    if name in artifacts:
      a = artifacts[name]["agreement"]
      worst = max(a["downscale_max_abs_diff"], a["upscale_max_abs_diff"])
      if worst > EXACT_LEVELS:
        raise ExportError(f"{name} differs from the Keras model by {worst} uint8 levels (allowed "
                          f"{EXACT_LEVELS}): the conversion is broken, nothing was written")


def quality_gate(artifacts: dict, root: pathlib.Path, max_drop: float) -> list[str]:
  """Leaves full-integer int8 out when its round trip loses more than `max_drop` dB to Keras.

  Its manifest entry stays, marked `skipped` with the reason and without file paths; its files
  under `root` are deleted. Returns the names left out.
  """
  full = artifacts.get(INT8_FULL)
  drop = full["agreement"]["psnr_drop_db"] if full else None
  if full is None or drop <= max_drop:
    return []
  full["skipped"] = f"round trip {drop} dB below Keras (limit {max_drop} dB): not shipped"
  for f in full["files"].values():
    path = root / f.pop("path")
    path.unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
      path.parent.rmdir()
  return [INT8_FULL]
