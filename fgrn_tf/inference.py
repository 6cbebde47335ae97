"""Rescaling image files with any FGRN backend: any size, tiles, gray, alpha, 16 bit, safe writes.

The rules below are what `python -m fgrn_tf {downscale,upscale,roundtrip}` does; docs/cli.md
tells users the same.

- Size. `downscale` reflect-pads an H x W image on the bottom and right to a multiple of the
  scale s, so its LR image is ceil(H/s) x ceil(W/s). A PNG LR records H x W in a text chunk
  (`fgrn:hr-size`, with `fgrn:scale`), and `upscale` crops its s*h x s*w result back to it;
  an LR without that record (other formats, other tools) is upscaled to s*h x s*w. `roundtrip`
  pads, downscales, upscales and crops, so its output has exactly the input's size.
- Tiles. The network sees at most `tile` x `tile` HR pixels at once (`tile / s` LR pixels).
  Windows overlap by the network's receptive field and only the inside of each is kept, so the
  tiled result is the untiled one up to float rounding, and memory depends on the tile size,
  not on the image size.
- Gray images are processed as RGB with 3 equal channels and written with one channel (the
  rounded mean of the three).
- Alpha is not seen by the network: it is resized with the project's MATLAB bicubic
  (`fgrn_tf.data.imresize`) at its own bit depth, rounded, clipped and re-attached.
- 16-bit images: colour goes through the network at 8 bits (what it was trained on), and is
  written back as 16-bit (v * 257), so a 16-bit input gives a 16-bit output; alpha keeps its
  16 bits through the bicubic resize.
- Safety. An output never replaces an input, nor an existing file without `overwrite`; it is
  written to a temporary file beside it and renamed (`images.write_atomic`), so an interrupted
  run leaves no partial image. A file that fails is reported by name and the others go on.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from fgrn_tf.backends import MissingHalfError
from fgrn_tf.data import images, pngtext

DEFAULT_TILE = 1024
# Context (LR pixels per side) assumed for backends that do not carry their model config
# (SavedModel, TFLite): enough for the paper's x2 (42 down / 33 up) and x4 (48 / 39) networks.
DEFAULT_MARGINS = (50, 50)
# MATLAB bicubic reaches 2 LR pixels (down) or 2 LR pixels (up) past a pixel; 4 is ample.
ALPHA_MARGIN = 4
HR_SIZE_KEY = "fgrn:hr-size"
SCALE_KEY = "fgrn:scale"
COMMANDS = ("downscale", "upscale", "roundtrip")
ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- receptive field and tiles ----------------------------------------------------------------

def _flow_reach(cells: int, inverse: bool, channels: int = 3, block: int = 5) -> int:
  """How far (LR pixels) F or F^-1 spreads a change, channel by channel (see flow.FlowCell:
  cell k's pivot is channel k mod 3; each dense block is 5 convolutions)."""
  r = [0] * channels
  for k in (reversed(range(cells)) if inverse else range(cells)):
    pivot, others = k % channels, [j for j in range(channels) if j != k % channels]
    if not inverse:  # l1 += a(l2); l2 = l2 * exp(b(l1)) + p(l1)
      r[pivot] = max(r[pivot], max(r[j] for j in others) + block)
    for j in others:  # (both directions) l2 from b(l1) and p(l1)
      r[j] = max(r[j], r[pivot] + block)
    if inverse:  # l1 -= a(l2)
      r[pivot] = max(r[pivot], max(r[j] for j in others) + block)
  return max(r)


def receptive_margins(config) -> tuple[int, int]:
  """LR pixels of context each side that one output pixel of `downscale` / `upscale` reads.

  Every 3x3 convolution adds one LR pixel: Gd has head, 2 per ResBlock and tail (the box
  average and the squeeze add none); Gu has head, 2 per ResBlock, body_end and tail; F and F^-1
  add what `_flow_reach` finds. `tests/test_inference.py` checks these are exact.

  Args:
    config: a `ModelConfig`.

  Returns:
    (down, up) margins in LR pixels (paper x2: 42 and 33; x4: 48 and 39).
  """
  down, up = 2 + 2 * config.down_blocks, 3 + 2 * config.up_blocks
  if config.uses_flow:
    down += _flow_reach(config.flow_cells, inverse=False)
    up += _flow_reach(config.flow_cells, inverse=True)
  return down, up


def margins_for(backend) -> tuple[int, int]:
  """`receptive_margins` of the backend's model when it carries its config, else the default."""
  config = getattr(backend, "model_config", None)
  if config is None:
    config = getattr(getattr(backend, "model", None), "model_config", None)
  return DEFAULT_MARGINS if config is None else receptive_margins(config)


def min_tile(backend) -> int:
  """The smallest `tile` (HR pixels) allowed for a backend: windows of 3 margins."""
  return backend.scale * 3 * max(margins_for(backend))


def spans(n: int, window: int, margin: int) -> list[tuple[int, int, int, int]]:
  """Splits [0, n) into kept cores and the windows computed for them.

  Every window has size `min(n, window)` (so all tiles of an image have one shape), and holds
  its core plus `margin` on each side, except where the core touches the image border.

  Returns:
    [(core_start, core_end, window_start, window_end)] covering [0, n) with the cores.
  """
  if window <= 0 or n <= window:
    return [(0, n, 0, n)]
  step = window - 2 * margin
  if step < margin:
    raise ValueError(f"a window of {window} is too small for a margin of {margin} "
                     f"(needs at least {3 * margin})")
  out, a = [], 0
  while a < n:
    b = min(n, a + step if a else window - margin)
    start = min(max(a - margin, 0), n - window)
    out.append((a, b, start, start + window))
    a = b
  return out


def apply_tiled(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, in_unit: int,
                out_unit: int, window: int, margin: int,
                on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
  """Applies a resizing map to an image window by window on a grid of LR pixels.

  Args:
    fn: maps a `[h*in_unit, w*in_unit(, C)]` array to `[h*out_unit, w*out_unit(, C)]`, each
      output pixel depending on input within `margin` grid cells.
    image: `[gh*in_unit, gw*in_unit(, C)]`.
    in_unit, out_unit: pixels per grid cell in input and output (s and 1 to downscale, 1 and s
      to upscale).
    window: largest window in grid cells (0: the whole image at once).
    margin: context kept on each side of a window's core, in grid cells.
    on_tile: called with (tiles done, tiles in all) after each window.

  Returns:
    `[gh*out_unit, gw*out_unit(, C)]`, equal to `fn(image)` when margin covers fn's reach.
  """
  gh, gw = image.shape[0] // in_unit, image.shape[1] // in_unit
  rows, cols = spans(gh, window, margin), spans(gw, window, margin)
  out = None
  i, o = in_unit, out_unit
  for k, ((a, b, wa, wb), (c, d, wc, wd)) in enumerate(
      (r, q) for r in rows for q in cols):
    piece = fn(image[wa * i:wb * i, wc * i:wd * i])
    if out is None:
      out = np.empty((gh * o, gw * o) + piece.shape[2:], piece.dtype)
    out[a * o:b * o, c * o:d * o] = piece[(a - wa) * o:(b - wa) * o, (c - wc) * o:(d - wc) * o]
    if on_tile is not None:
      on_tile(k + 1, len(rows) * len(cols))
  return out


def _window(tile: int, scale: int) -> int:
  return max(tile, 0) // scale


# ---- one image --------------------------------------------------------------------------------

def pad_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
  """Reflect-pads `[H, W(, C)]` on the bottom and right to multiples of `scale`."""
  h, w = image.shape[:2]
  ph, pw = -h % scale, -w % scale
  if not ph and not pw:
    return image
  if h < scale or w < scale:
    raise ValueError(f"{h}x{w} is smaller than the scale {scale}")
  return np.pad(image, [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2), mode="reflect")


def downscale_rgb(backend, rgb: np.ndarray, tile: int = DEFAULT_TILE,
                  on_tile=None) -> np.ndarray:
  """uint8 RGB `[H, W, 3]` of any size -> uint8 LR `[ceil(H/s), ceil(W/s), 3]`."""
  s = backend.scale
  return apply_tiled(lambda x: backend.downscale(x[None])[0], pad_to_multiple(rgb, s), s, 1,
                     _window(tile, s), margins_for(backend)[0], on_tile)


def upscale_rgb(backend, lr: np.ndarray, size: tuple[int, int] | None = None,
                tile: int = DEFAULT_TILE, on_tile=None) -> np.ndarray:
  """uint8 LR `[h, w, 3]` -> uint8 HR `[s*h, s*w, 3]`, cropped to `size` = (H, W) if given."""
  s = backend.scale
  hr = apply_tiled(lambda x: backend.upscale(x[None])[0], lr, 1, s, _window(tile, s),
                   margins_for(backend)[1], on_tile)
  return hr if size is None else hr[:size[0], :size[1]]


def resize_alpha(alpha: np.ndarray, scale: int, up: bool, size: tuple[int, int] | None = None,
                 tile: int = DEFAULT_TILE) -> np.ndarray:
  """MATLAB-bicubic resize of an alpha plane, at its own dtype (rounded and clipped).

  Args:
    alpha: uint8 or uint16 `[H, W]`.
    up: False: reflect-pad to a multiple of `scale` and downscale to ceil(H/s) x ceil(W/s);
      True: upscale to s*H x s*W, then crop to `size` when given.
  """
  from fgrn_tf.data.imresize import bicubic_downscale, bicubic_upscale

  top = np.iinfo(alpha.dtype).max
  resize = bicubic_upscale if up else bicubic_downscale

  def fn(x):
    y = resize(x[None, :, :, None].astype(np.float32), scale).numpy()[0, :, :, 0]
    return np.clip(np.round(y), 0, top).astype(alpha.dtype)

  if up:
    out = apply_tiled(fn, alpha, 1, scale, _window(tile, scale), ALPHA_MARGIN)
    return out if size is None else out[:size[0], :size[1]]
  return apply_tiled(fn, pad_to_multiple(alpha, scale), scale, 1, _window(tile, scale),
                     ALPHA_MARGIN)


@dataclasses.dataclass
class Picture:
  """An image as the tool handles it.

  Attributes:
    rgb: uint8 `[H, W, 3]`, what the network sees.
    alpha: uint8 or uint16 `[H, W]`, or None.
    gray: written with one colour channel.
    bit_depth: 8 or 16, the depth written.
    hr_size: for an LR picture, the (H, W) of the HR image it stands for, if known.
  """

  rgb: np.ndarray
  alpha: np.ndarray | None = None
  gray: bool = False
  bit_depth: int = 8
  hr_size: tuple[int, int] | None = None

  @classmethod
  def read(cls, path) -> Picture:
    """Decodes a file (ImageError names it when it cannot), with its recorded HR size."""
    d = images.decode(path)
    return cls(images.to_uint8(d.rgb), d.alpha, d.gray, d.bit_depth, _recorded_size(path))

  def file_array(self) -> np.ndarray:
    """The array to encode: gray `[H, W]` or RGB(A) `[H, W, 3|4]`, uint8 or uint16."""
    colour = self.rgb
    if self.gray and self.alpha is None:
      colour = np.round(colour.mean(axis=2, dtype=np.float32)).astype(np.uint8)
    if self.bit_depth == 16:
      colour = colour.astype(np.uint16) * np.uint16(257)
    if self.alpha is None:
      return colour
    alpha = self.alpha
    if alpha.dtype != colour.dtype:  # depths of colour and alpha match in any decoded file
      alpha = images.to_uint8(alpha) if colour.dtype == np.uint8 else alpha.astype(np.uint16) * 257
    return np.dstack([colour, alpha])

  def rgb8_as_written(self) -> np.ndarray:
    """uint8 RGB `[H, W, 3]` as a reader of the written file gets it (gray re-expanded)."""
    if not self.gray:
      return self.rgb
    g = np.round(self.rgb.mean(axis=2, dtype=np.float32)).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def _recorded_size(path) -> tuple[int, int] | None:
  text = pngtext.read_text(path)
  try:
    h, w = (int(v) for v in text[HR_SIZE_KEY].split("x"))
    return h, w
  except (KeyError, ValueError):
    return None


def downscale_picture(backend, hr: Picture, tile: int = DEFAULT_TILE, on_tile=None) -> Picture:
  """HR picture -> LR picture (ceil(H/s) x ceil(W/s)) that records the HR size."""
  s = backend.scale
  lr = downscale_rgb(backend, hr.rgb, tile, on_tile)
  alpha = None if hr.alpha is None else resize_alpha(hr.alpha, s, up=False, tile=tile)
  return Picture(lr, alpha, hr.gray, hr.bit_depth, hr_size=hr.rgb.shape[:2])


def upscale_picture(backend, lr: Picture, tile: int = DEFAULT_TILE, on_tile=None) -> Picture:
  """LR picture -> HR picture: s*h x s*w, or the recorded HR size when it fits this LR size."""
  s = backend.scale
  h, w = lr.rgb.shape[:2]
  size = lr.hr_size
  if size is not None and (math.ceil(size[0] / s), math.ceil(size[1] / s)) != (h, w):
    size = None  # recorded for another scale or before the image was edited: not ours to trust
  hr = upscale_rgb(backend, lr.rgb, size, tile, on_tile)
  alpha = None if lr.alpha is None else resize_alpha(lr.alpha, s, up=True, size=size, tile=tile)
  return Picture(hr, alpha, lr.gray, lr.bit_depth)


def encode_picture(path, picture: Picture, scale: int | None = None) -> bytes:
  """Encoded file bytes for `path`'s format; a PNG LR (with `scale`) records its HR size."""
  data = images.encode(path, picture.file_array())
  if scale is not None and picture.hr_size is not None and data.startswith(pngtext.SIGNATURE):
    h, w = picture.hr_size
    data = pngtext.add_text(data, {HR_SIZE_KEY: f"{h}x{w}", SCALE_KEY: str(scale)})
  return data


def metrics_available() -> bool:
  """Whether the evaluation's PSNR/SSIM module (issue 4) is installed."""
  import importlib.util

  return importlib.util.find_spec("fgrn_tf.metrics.psnr_ssim") is not None


def image_quality(hr: np.ndarray, sr: np.ndarray, scale: int,
                  strip_pixels: int = 1 << 20) -> tuple[float, float]:
  """Y-channel PSNR (dB) and SSIM of a round trip, with the evaluation's conventions.

  Equal to `psnr_ssim.psnr_y` / `ssim_y` with `crop_border=scale` (issue 4's module does the
  arithmetic), but computed over strips of rows, so that a 64-megapixel image needs a few
  float64 strips rather than a dozen float64 copies of itself: SSIM is a mean over its valid
  region, which strips overlapping by the window size less one split exactly; PSNR comes from
  the strips' mean squared errors.

  Args:
    hr, sr: uint8 RGB `[H, W, 3]` of equal size (not mod-cropped: the round trip keeps H x W).
    scale: the model's scale (the border the evaluation crops).
    strip_pixels: about how many pixels one strip holds.

  Returns:
    (psnr, ssim); psnr is inf for identical images, ssim NaN for images too small for the
    11x11 window after the border crop.
  """
  from fgrn_tf.metrics import psnr_ssim as m

  if hr.shape != sr.shape:
    raise ValueError(f"images differ in shape: {hr.shape} vs {sr.shape}")
  height, width = hr.shape[0] - 2 * scale, hr.shape[1] - 2 * scale
  if height < 1 or width < 1:
    return math.nan, math.nan

  def y(image, a, b):  # Y of rows [a, b) of the border-cropped image
    return m.rgb_to_y(image[scale + a:scale + b, scale:scale + width])

  rows = max(m.SSIM_WINDOW, strip_pixels // width)
  sq_err = 0.0
  for a in range(0, height, rows):
    b = min(a + rows, height)
    sq_err += (b - a) * width * 255.0**2 / 10.0 ** (m.psnr(y(hr, a, b), y(sr, a, b)) / 10.0)
  psnr = math.inf if sq_err == 0 else 10.0 * math.log10(255.0**2 * height * width / sq_err)
  # The SSIM map of rows [a, b + window - 1) is rows [a, b) of the whole map.
  valid, reach = height - m.SSIM_WINDOW + 1, m.SSIM_WINDOW - 1
  if valid < 1 or width < m.SSIM_WINDOW:
    return psnr, math.nan
  total = 0.0
  for a in range(0, valid, rows):
    b = min(a + rows, valid)
    total += m.ssim(y(hr, a, b + reach), y(sr, a, b + reach)) * (b - a)
  return psnr, total / valid


# ---- many files -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and the name of its outputs (its file name, or its path under a folder)."""

  source: pathlib.Path
  name: pathlib.Path


@dataclasses.dataclass
class Result:
  """What happened to one input; `error` is one line naming the file, or None."""

  source: pathlib.Path
  outputs: list[pathlib.Path] = dataclasses.field(default_factory=list)
  error: str | None = None
  psnr: float | None = None
  ssim: float | None = None
  seconds: float = 0.0


def collect_inputs(inputs: Sequence[str]) -> tuple[list[Job], list[Result]]:
  """Expands files, folders (recursively, image extensions only) and globs into jobs.

  Returns:
    (jobs, failures): a failure for each argument that names nothing, and for a second file
    whose output name is already taken.
  """
  jobs: list[Job] = []
  failures: list[Result] = []
  seen: dict[pathlib.Path, pathlib.Path] = {}
  names: dict[pathlib.Path, pathlib.Path] = {}
  for arg in inputs:
    path = pathlib.Path(arg)
    if path.is_dir():
      try:
        found = [(pathlib.Path(p), pathlib.Path(p).relative_to(path))
                 for p in images.list_images(path)]
      except images.ImageError as e:
        failures.append(Result(path, error=str(e)))
        continue
    elif path.exists():
      found = [(path, pathlib.Path(path.name))]
    elif glob.has_magic(arg):
      found = [(pathlib.Path(p), pathlib.Path(pathlib.Path(p).name))
               for p in sorted(glob.glob(arg, recursive=True)) if os.path.isfile(p)]
      if not found:
        failures.append(Result(path, error=f"{arg}: no file matches"))
        continue
    else:
      failures.append(Result(path, error=f"{arg}: no such file or folder"))
      continue
    for source, name in found:
      key = source.resolve()
      if key in seen:
        continue
      seen[key] = source
      if name in names:
        failures.append(Result(source, error=f"{source}: output name {name} is already "
                                             f"taken by {names[name]}"))
        continue
      names[name] = source
      jobs.append(Job(source, name))
  return jobs, failures


def default_model_path(scale: int) -> pathlib.Path:
  """Where the shipped weights for a scale live: `models/fgrn_x{scale}/` in the repository."""
  return ROOT / "models" / f"fgrn_x{scale}"


class _Skip(Exception):
  """A per-file failure whose message is already one line naming the file."""


def _targets_ok(targets: Sequence[pathlib.Path], inputs: set[pathlib.Path], source: pathlib.Path,
                overwrite: bool) -> None:
  for target in targets:
    if target.resolve() in inputs or (target.exists() and source.exists()
                                      and os.path.samefile(target, source)):
      raise _Skip(f"{source}: output {target} is an input; refusing to overwrite it")
    if target.exists() and not overwrite:
      raise _Skip(f"{source}: output {target} exists (pass --overwrite to replace it)")
    try:
      target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise _Skip(f"{source}: cannot create output folder {target.parent} "
                  f"({e.strerror or e})") from None
    if not target.parent.is_dir():
      raise _Skip(f"{source}: output folder {target.parent} is not a folder")


def _write(target: pathlib.Path, data: bytes, source: pathlib.Path, overwrite: bool) -> None:
  try:
    images.write_atomic(target, data, overwrite=overwrite)
  except FileExistsError:
    raise _Skip(f"{source}: output {target} exists (pass --overwrite to replace it)") from None
  except OSError as e:
    raise _Skip(f"{source}: cannot write {target} ({e.strerror or e})") from None


def one_line(error: BaseException) -> str:
  """The first non-empty line of an error's message (TF's run to many lines)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[0] if lines else type(error).__name__


def rescale_files(command: str, backend, jobs: Sequence[Job], out_dir=None, lr_dir=None,
                  tile: int = DEFAULT_TILE, overwrite: bool = False, metrics: bool = True,
                  on_tile: Callable[[int, int], None] | None = None) -> Iterator[Result]:
  """Runs `command` on each job and yields its Result; a failing file does not stop the rest.

  Args:
    command: "downscale" or "upscale" (write to `out_dir`), or "roundtrip" (HR to `out_dir`
      and LR to `lr_dir`, each only when given; PSNR/SSIM when `metrics`).
    backend: a `fgrn_tf.backends.Backend`.
    jobs: from `collect_inputs`.
    tile: largest HR window the network sees (0: whole images).
    overwrite: replace existing outputs (never inputs).
    on_tile: progress inside an image, called with (tiles done, tiles in all).

  Raises:
    MissingHalfError: the backend (one .tflite file) lacks the half the command needs.
  """
  if command not in COMMANDS:
    raise ValueError(f"unknown command {command!r}; expected one of {COMMANDS}")
  s = backend.scale
  inputs = {job.source.resolve() for job in jobs}
  out_dir = None if out_dir is None else pathlib.Path(out_dir)
  lr_dir = None if lr_dir is None else pathlib.Path(lr_dir)
  for job in jobs:
    start = time.perf_counter()
    result = Result(job.source)
    try:
      hr_target = None if out_dir is None else out_dir / job.name
      lr_target = lr_dir / job.name if command == "roundtrip" and lr_dir is not None else None
      targets = [t for t in (hr_target, lr_target) if t is not None]
      _targets_ok(targets, inputs, job.source, overwrite)
      picture = Picture.read(job.source)
      try:
        if command == "downscale":
          outputs = [(hr_target, downscale_picture(backend, picture, tile, on_tile), s)]
        elif command == "upscale":
          outputs = [(hr_target, upscale_picture(backend, picture, tile, on_tile), None)]
        else:
          lr = downscale_picture(backend, picture, tile, on_tile)
          # The LR as its file would hold it: a gray LR is stored (and read back) with one channel.
          lr = dataclasses.replace(lr, rgb=lr.rgb8_as_written())
          sr = upscale_picture(backend, lr, tile, on_tile)
          if metrics:
            result.psnr, result.ssim = image_quality(picture.rgb8_as_written(),
                                                     sr.rgb8_as_written(), s)
          outputs = [(hr_target, sr, None), (lr_target, lr, s)]
      except MissingHalfError:
        raise  # a .tflite half asked for the other half: no file can succeed, stop here
      except Exception as e:  # TF and the backends raise many kinds: one line each, go on
        raise _Skip(f"{job.source}: {one_line(e)}") from None
      for target, out, record in outputs:
        if target is not None:
          _write(target, encode_picture(target, out, record), job.source, overwrite)
          result.outputs.append(target)
    except _Skip as e:
      result.error = str(e)
    except images.ImageError as e:
      result.error = str(e)
    except MemoryError:
      result.error = f"{job.source}: out of memory (try a smaller --tile)"
    result.seconds = time.perf_counter() - start
    yield result
