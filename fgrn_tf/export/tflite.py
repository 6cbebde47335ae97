"""The two halves of FGRN as .tflite files for phones: float32, float16 and int8 variants.

Each half is converted from its uint8 signature in a SavedModel (the graph TF Serving runs,
written without the bytes signatures: `exporter`), so the weights are frozen constants.
Converting a `tf.Module` that merely holds the Keras model instead leaves VAR_HANDLE/
READ_VARIABLE ops and gives NaN without an error (docs/tf_notes.md, Export);
`fgrn_tf.runtime.litert.check_builtin_ops` refuses such a model, and Select-TF (Flex) ops,
after every conversion.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import warnings
from collections.abc import Callable, Iterable

import numpy as np

from fgrn_tf import files
from fgrn_tf.errors import FGRNError, one_line
from fgrn_tf.export import gpu_delegate
from fgrn_tf.runtime import litert
from fgrn_tf.runtime.backends import TFLITE_FILES

# The folder of an export holding one folder per variant (`Variant.folder`).
TFLITE_DIR = "tflite"



class ConversionError(FGRNError):
  """TFLite's converter refused a half (or its result uses ops the interpreters cannot run)."""


@dataclasses.dataclass(frozen=True)
class Variant:
  """One way of converting.

  Attributes:
    name: the --formats name, also the folder under `tflite/` holding the pair.
    folder: that folder's name.
    description: one line for the manifest and BUILD.md.
    optimize: apply the converter's default optimisation (weight quantization).
    float16: store weights as float16 (with `optimize`).
    calibrate: quantize activations too, from representative images (full integer).
    int8_scopes: with `calibrate`, quantize only the ops under these Keras scopes (Gd, Gu) and
      keep every other op float (the flow: `docs/mobile.md`, "Full-integer int8").
  """

  name: str
  folder: str
  description: str
  optimize: bool = False
  float16: bool = False
  calibrate: bool = False
  int8_scopes: tuple[str, ...] = ()


VARIANTS = {v.name: v for v in (
    Variant("tflite_float32", "float32", "float32 weights and arithmetic"),
    Variant("tflite_float16", "float16", "float16 weights, float32 arithmetic on CPU",
            optimize=True, float16=True),
    Variant("tflite_int8", "int8", "dynamic-range int8: int8 weights, activations quantized "
            "on the fly per tensor", optimize=True),
    Variant("tflite_int8_full", "int8_full", "full-integer int8: int8 weights and activations "
            "calibrated on training images (float fallback where no int8 kernel exists)",
            optimize=True, calibrate=True),
    Variant("tflite_int8_mixed", "int8_mixed", "int8 weights and activations in Gd and Gu, "
            "F in float32 (int8 cannot hold the 1/255 detail F must invert)",
            optimize=True, calibrate=True, int8_scopes=("Gd", "Gu")),
)}


def convert(saved_model_dir, half: str, variant: Variant,
            representative: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
  """Converts one signature of the exported SavedModel to a .tflite model.

  Args:
    saved_model_dir: the SavedModel written by `fgrn_tf.export.saved_model.write`.
    half: "downscale" or "upscale" (the signature to convert).
    variant: how to convert.
    representative: for `variant.calibrate`, yields `[uint8 [1, H, W, 3]]` inputs of this half.

  Returns:
    The .tflite bytes, uint8 `[N, H, W, 3]` in and out with dynamic N, H and W, checked to use
    TFLite builtin ops only (NotBuiltinOpsError otherwise); the uint8 I/O converts through
    DEQUANTIZE / QUANTIZE, which TFLite's GPU delegate runs (`gpu_delegate`).
  """
  import tensorflow as tf
  from tensorflow.lite.python.convert_phase import ConverterError

  if half not in TFLITE_FILES:
    raise ValueError(f"half must be one of {sorted(TFLITE_FILES)}, got {half!r}")
  converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[half])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex fallback
  if variant.optimize:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if variant.float16:
    converter.target_spec.supported_types = [tf.float16]
  if variant.calibrate:
    if representative is None:
      raise ValueError(f"{variant.name} needs representative images to calibrate on")
    converter.representative_dataset = representative
  try:
    if variant.int8_scopes:
      content = _selective_int8(converter, converter.convert(), representative,
                                variant.int8_scopes)
    else:
      content = converter.convert()
  except (ConverterError, ValueError, RuntimeError) as e:  # MLIR dumps: the first line says it
    raise ConversionError(f"{TFLITE_FILES[half]} ({variant.name}): {one_line(e)}") from None
  if not variant.calibrate or variant.int8_scopes:  # full int8's I/O: the converter's own
    content = gpu_delegate.uint8_io_as_quantize(content)
  litert.check_builtin_ops(content, f"{TFLITE_FILES[half]} ({variant.name})")
  return content


def in_scopes(tensor_name: str, scopes) -> bool:
  """Whether a converted tensor comes from a layer under one of the Keras `scopes` ("Gu" is
  written "Gu/" or, called again, "Gu_1/")."""
  return bool(re.search(r"(^|/)(" + "|".join(map(re.escape, scopes)) + r")(_\d+)?/",
                        tensor_name))


def _selective_int8(converter, full_int8: bytes, representative, scopes) -> bytes:
  """The model of `converter` with int8 only for the ops under `scopes` (TFLite's
  quantization debugger, `denylisted_nodes`: every quantized tensor outside them)."""
  import tensorflow as tf

  outside = [name for name in litert.quantized_tensor_names(full_int8)
             if not in_scopes(name, scopes)]
  options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=outside)
  with warnings.catch_warnings():  # the debugger runs tf.lite.Interpreter, which warns it is old
    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative, debug_options=options)
    return debugger.get_nondebug_quantized_model()


def write(path, content: bytes, info: dict) -> pathlib.Path:
  """Writes a converted half with `info` (half, scale, ...) in its `fgrn` metadata entry."""
  path = pathlib.Path(path)
  files.write_bytes(path, litert.with_metadata(content, info))
  return path


def representative_crops(images: list[np.ndarray], scale: int, crop: int = 128,
                         count: int = 16, seed: int = 0) -> list[np.ndarray]:
  """Random HR crops (uint8 `[1, crop, crop, 3]`, crop a multiple of the scale) to calibrate on.

  Images smaller than `crop` are used whole, mod-cropped to the scale.
  """
  if not images:
    raise ValueError("no images to calibrate on")
  crop -= crop % scale
  rng = np.random.default_rng(seed)
  out = []
  for i in range(count):
    image = images[i % len(images)]
    h, w = image.shape[:2]
    ch, cw = min(crop, h - h % scale), min(crop, w - w % scale)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out.append(np.ascontiguousarray(image[None, y:y + ch, x:x + cw]))
  return out

