"""The Python API: a trained FGRN (Li et al., BMVC 2021) by name or path, rescaling NumPy arrays
and image files (docs/python.md).

`load` finds a model by the command-line tools' rules (`fgrn_tf.runtime.resolve`) and returns a
`Rescaler`. Arrays go through the tool's tiling (`fgrn_tf.rescale.tiling`), so memory depends on
the tile, not the image; files go through the tool's batch of checks and safe writes
(`fgrn_tf.rescale.batch`). Every refusal is an `FGRNError` with the tool's one-line message.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import overload

import numpy as np

from fgrn_tf.data import codecs
from fgrn_tf.errors import FGRNError, UsageError
from fgrn_tf.models.image_batch import BatchError
from fgrn_tf.rescale import batch, commands, tiling
from fgrn_tf.rescale.tiling import DEFAULT_TILE
from fgrn_tf.runtime import backends, resolve, shipped

PathLike = str | os.PathLike
Inputs = PathLike | Sequence[PathLike]


class FilesError(FGRNError):
  """Some input files could not be rescaled; the others were.

  Attributes:
    failures: one line per file that failed, naming it (the tool's per-file lines).
    outputs: the files that were written.
  """

  def __init__(self, failures: Sequence[str], outputs: Sequence[pathlib.Path] = ()):
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    super().__init__(f"{failures[0]}{more}")
    self.failures = list(failures)
    self.outputs = list(outputs)


def bundled_models() -> list[shipped.Bundled]:
  """The models inside the package, as `fgrn models` lists them (name, scale, size, what each
  was trained for, its Set5 figures); `load` takes their names."""
  return [shipped.describe(name) for name in shipped.names()]


def _as_batch(images: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
  """(uint8 `[N, H, W, 3]`, whether one `[H, W, 3]` image was given); BatchError otherwise."""
  shape = images.shape
  if images.dtype != np.uint8 or images.ndim not in (3, 4) or shape[-1] != 3:
    raise BatchError(f"{name} must be uint8 [H, W, 3] or [N, H, W, 3] (RGB); received dtype "
                     f"{images.dtype} with shape {shape}")
  if min(shape) < 1:
    raise BatchError(f"{name} is empty: shape {shape}")
  return (images[None], True) if images.ndim == 3 else (images, False)


def _codec(spec: str | None) -> codecs.Codec | None:
  return None if spec is None else codecs.parse(spec)


def _is_files(images) -> bool:
  if isinstance(images, np.ndarray):
    return False
  if isinstance(images, PathLike):
    return True
  if isinstance(images, Sequence) and images and all(isinstance(i, PathLike) for i in images):
    return True
  raise UsageError(f"give a uint8 NumPy array or image file paths, not "
                   f"{type(images).__name__}")


class Rescaler:
  """A loaded FGRN: `downscale`, `upscale` and `roundtrip` of arrays or image files.

  Arrays are uint8 RGB, one image `[H, W, 3]` or a batch `[N, H, W, 3]`, and come back in the
  same form. Any size is taken: sides the scale does not divide are reflect-padded (the LR of
  H x W is ceil(H/s) x ceil(W/s)), and images larger than `tile` go through the network window
  by window. File inputs are paths, folders or globs (as the `fgrn` tool takes them); the
  results are written under `output_dir` with the inputs' names, and their paths returned.

  Attributes:
    scale: the rescaling factor s.
    model: the model's path (a list for a .tflite pair).
    backend: what runs it (`fgrn_tf.runtime.backends.Backend`: Keras, SavedModel or TFLite).
    tile: the largest HR window the network sees, in pixels per side (0: whole images).
  """

  def __init__(self, backend: backends.Backend, model: resolve.ModelSpec,
               tile: int = DEFAULT_TILE):
    self.backend = backend
    self.model = model
    self.scale = backend.scale
    self.tile = tile

  def __repr__(self) -> str:
    return f"Rescaler({resolve.describe(self.model)}, x{self.scale}, {self.backend.name})"

  @overload
  def downscale(self, images: np.ndarray, output_dir: None = None, *,
                codec: str | None = None, overwrite: bool = False) -> np.ndarray: ...

  @overload
  def downscale(self, images: Inputs, output_dir: PathLike, *, codec: str | None = None,
                overwrite: bool = False) -> list[pathlib.Path]: ...

  def downscale(self, images, output_dir=None, *, codec=None, overwrite=False):
    """HR -> LR.

    Args:
      images: uint8 `[H, W, 3]` or `[N, H, W, 3]`, or image files (paths, folders, globs).
      output_dir: for files: the folder the LR files go to (made if missing).
      codec: how the LR is stored, as the tool's `--codec`: "png" (default for files), or
        "jpeg:Q" / "webp:Q". An array comes back as the codec's decoder gives it; a file is
        written in the codec's format (photo.png -> photo.jpg).
      overwrite: replace existing output files (inputs never are).

    Returns:
      uint8 `[ceil(H/s), ceil(W/s), 3]` (or the batch of them); for files, the paths written.

    Raises:
      FGRNError: `BatchError` (an array it cannot take), `CodecError`, `UsageError` (a
        refused run), `FilesError` (some files failed).
    """
    chosen = _codec(codec)
    if _is_files(images):
      return self._files("downscale", images, output_dir, None, chosen, overwrite)
    hr, single = _as_batch(np.asarray(images), "downscale input")
    out = [self._stored_lr(image, chosen) for image in hr]
    return out[0] if single else np.stack(out)

  @overload
  def upscale(self, images: np.ndarray, output_dir: None = None, *,
              size: tuple[int, int] | None = None, overwrite: bool = False) -> np.ndarray: ...

  @overload
  def upscale(self, images: Inputs, output_dir: PathLike, *,
              size: tuple[int, int] | None = None,
              overwrite: bool = False) -> list[pathlib.Path]: ...

  def upscale(self, images, output_dir=None, *, size=None, overwrite=False):
    """LR -> HR.

    Args:
      images: uint8 `[h, w, 3]` or `[N, h, w, 3]`, or LR image files (any format; a PNG LR
        written by `downscale` records its HR size and is cropped back to it).
      output_dir: for files: the folder the HR files go to.
      size: for arrays: the (H, W) to crop the `[s*h, s*w, 3]` result to (the HR's size when
        its sides were not multiples of s).
      overwrite: replace existing output files.

    Returns:
      uint8 `[s*h, s*w, 3]` (or `size`), or the batch of them; for files, the paths written.

    Raises:
      FGRNError: as for `downscale`.
    """
    if _is_files(images):
      if size is not None:
        raise UsageError("size is for arrays: an LR file records its HR size")
      return self._files("upscale", images, output_dir, None, None, overwrite)
    lr, single = _as_batch(np.asarray(images), "upscale input")
    out = [tiling.upscale_rgb(self.backend, image, size, self.tile) for image in lr]
    return out[0] if single else np.stack(out)

  @overload
  def roundtrip(self, images: np.ndarray, output_dir: None = None, *,
                lr_dir: None = None, codec: str | None = None,
                overwrite: bool = False) -> np.ndarray: ...

  @overload
  def roundtrip(self, images: Inputs, output_dir: PathLike | None = None, *,
                lr_dir: PathLike | None = None, codec: str | None = None,
                overwrite: bool = False) -> list[pathlib.Path]: ...

  def roundtrip(self, images, output_dir=None, *, lr_dir=None, codec=None, overwrite=False):
    """HR -> LR -> HR: the reconstruction, at the HR's size.

    Args:
      images: uint8 `[H, W, 3]` or `[N, H, W, 3]`, or image files.
      output_dir: for files: where the reconstructions go.
      lr_dir: for files: where the LR files go (at least one of the two folders).
      codec: the LR goes through this codec ("jpeg:90", "webp:75"; default lossless) before it
        is upscaled, as a receiver of the stored LR would upscale it.
      overwrite: replace existing output files.

    Returns:
      uint8 of the input's shape; for files, the paths written.

    Raises:
      FGRNError: as for `downscale`.
    """
    chosen = _codec(codec)
    if _is_files(images):
      return self._files("roundtrip", images, output_dir, lr_dir, chosen, overwrite)
    hr, single = _as_batch(np.asarray(images), "roundtrip input")
    out = [tiling.upscale_rgb(self.backend, self._stored_lr(image, chosen), image.shape[:2],
                              self.tile) for image in hr]
    return out[0] if single else np.stack(out)

  def _stored_lr(self, image: np.ndarray, codec: codecs.Codec | None) -> np.ndarray:
    """The LR of one HR image as it is stored: through `codec`'s decoder when it is lossy."""
    lr = tiling.downscale_rgb(self.backend, image, self.tile)
    return lr if codec is None or codec.lossless else codec.roundtrip(lr)[0]

  def _files(self, command: str, inputs: Inputs, output_dir, lr_dir,
             codec: codecs.Codec | None, overwrite: bool) -> list[pathlib.Path]:
    """The tool's file handling for `command`: checks of every file first, then the work."""
    inputs = [inputs] if isinstance(inputs, PathLike) else list(inputs)
    if output_dir is None and (command != "roundtrip" or lr_dir is None):
      raise UsageError(f"{command} of files needs an output_dir"
                       + (" or an lr_dir" if command == "roundtrip" else ""))
    commands.check_output_dirs(output_dir, lr_dir)
    jobs, failures = batch.collect_inputs([os.fspath(i) for i in inputs])
    jobs, refused = batch.preflight(command, jobs, output_dir, lr_dir, overwrite=overwrite,
                                    scale=self.scale, codec=codec)
    failures += refused
    if failures:  # nothing written yet: the caller fixes the call and runs it again
      raise FilesError([f.error for f in failures])
    written, failed = [], []
    for result in batch.rescale_files(command, self.backend, jobs, output_dir, lr_dir,
                                      tile=self.tile, overwrite=overwrite, metrics=False,
                                      codec=codec):
      written += result.outputs
      if result.error:
        failed.append(result.error)
    if failed:
      raise FilesError(failed, written)
    return written


def load(model: PathLike | Sequence[PathLike] | None = None, *, scale: int | None = None,
         tile: int = DEFAULT_TILE, precision: str = "float32", artifact: str | None = None,
         num_threads: int | None = None) -> Rescaler:
  """A trained FGRN, ready to rescale (loading takes seconds).

  Args:
    model: a bundled model's name ("codec_x2"; `bundled_models` lists them), or a path: a
      training workdir, a `.keras` file, an export folder, a SavedModel, a `.tflite` file or
      folder, or a `.tflite` pair (two paths, or "down.tflite,up.tflite"). A path that exists
      wins over a name. None: the bundled `fgrn_x<scale>`.
    scale: the scale asked for: picks the bundled model when `model` is None (default 2), and
      refuses a model of another scale.
    tile: the largest HR window the network sees, in pixels per side; larger images are done
      window by window with overlaps (the result does not change), so memory stays bounded.
      0: whole images.
    precision: what a Keras model computes Gd and Gu in ("float32", "mixed_bfloat16",
      "mixed_float16"); an export computes as it was exported.
    artifact: for an export folder: which of its artifacts to run ("savedmodel",
      "tflite_float16", ...).
    num_threads: TFLite interpreter threads (None: LiteRT's default).

  Returns:
    A `Rescaler`.

  Raises:
    FGRNError: the tool's one-line refusals: `UsageError` (no such path or name, another
      scale, a tile below the model's smallest), `ModelNotFoundError`, `ModelFileError`.
  """
  spec = resolve.model_spec(model, scale)
  backend = resolve.open_model(spec, scale, tile=tile, precision=precision, artifact=artifact,
                               num_threads=num_threads)
  return Rescaler(backend, spec, tile)
