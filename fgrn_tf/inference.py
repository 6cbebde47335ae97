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
- Scale record. `upscale` refuses (that file only) an LR whose `fgrn:scale` is not the model's:
  an x2 LR upscaled by an x4 model is a wrong image of a plausible size.
- Safety. Two outputs of one run on one path are refused before any work (`TargetClash`). An
  output never replaces an input, nor an existing file without `overwrite`; it is written to a
  temporary file beside it and renamed (`images.write_atomic`), so an interrupted run leaves no
  partial image, and a file whose second output (roundtrip's LR) fails keeps no new first one.
  Output folders are made when the first file is written into them, and a folder made for a
  write that failed is removed again. A file that fails is reported by name and the others go on.
- Checks first. `preflight` does, for every file, what needs no model (readable image, free
  targets, scale record), so a command line's mistakes show before a model takes seconds to load.
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import json
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


def min_tile_for(scale: int, config) -> int:
  """`min_tile` of a model known by its scale and `ModelConfig` (None: DEFAULT_MARGINS)."""
  margins = DEFAULT_MARGINS if config is None else receptive_margins(config)
  return scale * 3 * max(margins)


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
    scale: for an LR picture, the scale of the model that made it, if known.
  """

  rgb: np.ndarray
  alpha: np.ndarray | None = None
  gray: bool = False
  bit_depth: int = 8
  hr_size: tuple[int, int] | None = None
  scale: int | None = None

  @classmethod
  def read(cls, path) -> Picture:
    """Decodes a file (ImageError names it when it cannot), with its recorded HR size and
    scale."""
    d = images.decode(path)
    size, scale = _record(path)
    return cls(images.to_uint8(d.rgb), d.alpha, d.gray, d.bit_depth, size, scale)

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


def _record(path) -> tuple[tuple[int, int] | None, int | None]:
  """(HR size, scale) a PNG LR records; None for what it does not record, or records badly."""
  text = pngtext.read_text(path)
  try:
    h, w = (int(v) for v in text[HR_SIZE_KEY].split("x"))
    size = (h, w)
  except (KeyError, ValueError):
    size = None
  try:
    scale = int(text[SCALE_KEY])
  except (KeyError, ValueError):
    scale = None
  return size, scale if scale is None or scale >= 2 else None


def _scale_refusal(recorded: int, scale: int) -> str:
  return (f"made by an x{recorded} model ({SCALE_KEY}={recorded}), but the model is x{scale}; "
          f"upscale it with an x{recorded} model")


def scale_mismatch(path, scale: int) -> str | None:
  """The one-line refusal when the LR at `path` records another scale than `scale`, else None
  (also for a file that records none). Reads only the PNG chunks before the image data."""
  recorded = _record(path)[1]
  if recorded is None or recorded == scale:
    return None
  return f"{path}: {_scale_refusal(recorded, scale)}"


def downscale_picture(backend, hr: Picture, tile: int = DEFAULT_TILE, on_tile=None) -> Picture:
  """HR picture -> LR picture (ceil(H/s) x ceil(W/s)) that records the HR size."""
  s = backend.scale
  lr = downscale_rgb(backend, hr.rgb, tile, on_tile)
  alpha = None if hr.alpha is None else resize_alpha(hr.alpha, s, up=False, tile=tile)
  return Picture(lr, alpha, hr.gray, hr.bit_depth, hr_size=hr.rgb.shape[:2], scale=s)


def upscale_picture(backend, lr: Picture, tile: int = DEFAULT_TILE, on_tile=None) -> Picture:
  """LR picture -> HR picture: s*h x s*w, or the recorded HR size when it fits this LR size.

  Raises:
    ValueError: the picture records another scale than the backend's.
  """
  s = backend.scale
  if lr.scale is not None and lr.scale != s:
    raise ValueError(_scale_refusal(lr.scale, s))
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


class TargetClash(ValueError):
  """Two outputs of one run would be written to one path; the run is refused before any work."""


def collect_inputs(inputs: Sequence[str]) -> tuple[list[Job], list[Result]]:
  """Expands files, folders (recursively, image extensions only) and globs into jobs.

  A file named twice (directly, by a glob, in a folder) is one job. Two files with one output
  name are two jobs: `check_targets` refuses them, with the folders the outputs go to.

  Returns:
    (jobs, failures): a failure for each argument that names nothing.
  """
  jobs: list[Job] = []
  failures: list[Result] = []
  seen: set[pathlib.Path] = set()
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
      if key not in seen:
        seen.add(key)
        jobs.append(Job(source, name))
  return jobs, failures


def output_targets(command: str, job: Job, out_dir=None, lr_dir=None
                   ) -> list[tuple[str, pathlib.Path]]:
  """(kind, path) of each file `command` writes for a job: kind "HR" or "LR", in write order."""
  kind = "LR" if command == "downscale" else "HR"
  targets = [] if out_dir is None else [(kind, pathlib.Path(out_dir) / job.name)]
  if command == "roundtrip" and lr_dir is not None:
    targets.append(("LR", pathlib.Path(lr_dir) / job.name))
  return targets


def _same_path_key(path: pathlib.Path) -> str:
  # realpath follows the links of the part that exists: `out` and `./link-to-out` are one place.
  return os.path.normcase(os.path.realpath(path))


def check_targets(command: str, jobs: Sequence[Job], out_dir=None, lr_dir=None) -> None:
  """Raises TargetClash when two outputs of the run would be one file (the second would silently
  replace the first, or be refused half way through the run).

  Covers two inputs of one name, -o and lr_dir being one folder, and folders nested so that
  one input's HR is another's LR; the message names the path and both inputs.
  """
  first: dict[str, tuple[str, Job]] = {}
  clashes: list[str] = []
  for job in jobs:
    for kind, target in output_targets(command, job, out_dir, lr_dir):
      key = _same_path_key(target)
      if key not in first:
        first[key] = (kind, job)
        continue
      (kind0, job0) = first[key]
      if command == "roundtrip":
        what = f"the {kind0} of {job0.source} and the {kind} of {job.source}"
      else:
        what = f"{job0.source} and {job.source}"
      clashes.append(f"{what} would both be written to {target}")
  if clashes:
    more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
    raise TargetClash(clashes[0] + more)


def not_a_folder(path) -> pathlib.Path | None:
  """The path, or the parent of it, that exists and is not a folder, so that no folder can be
  made at `path`; None when `path` is a folder or can be made."""
  path = pathlib.Path(path)
  for candidate in (path, *path.parents):
    if candidate.exists():
      return None if candidate.is_dir() else candidate
  return None


def _reason(error: OSError) -> str:
  """Why an OS call failed, without the paths its text carries: a write's error names its
  hidden temporary file, which the user never asked for and cannot find."""
  if error.strerror:
    return error.strerror
  return errno.errorcode.get(error.errno, type(error).__name__) if error.errno else \
      type(error).__name__


def check_source(path) -> None:
  """Refuses (ImageError naming the file) what a file's first bytes tell without decoding it:
  missing, unreadable, empty, or in no format the decoder reads. Truncated or corrupt data is
  found when the file is decoded."""
  import cv2  # not at the top: images sets OpenCV's pixel ceiling before cv2 first loads

  path = pathlib.Path(path)
  if not path.is_file():
    raise images.ImageError(f"{path}: no such file")
  try:
    with open(path, "rb") as f:
      head = f.read(1)
  except OSError as e:
    raise images.ImageError(f"{path}: cannot read ({_reason(e)})") from None
  if not head:
    raise images.ImageError(f"{path}: empty file")
  try:
    known = cv2.haveImageReader(str(path))  # reads the signature, as imdecode's own check does
  except Exception:  # a name OpenCV cannot take (bytes that are not UTF-8): decoding will tell
    known = True
  if not known:
    raise images.ImageError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
  images.check_header(path)  # a file over the pixel limit is refused before the model loads


class _Skip(Exception):
  """A per-file failure whose message is already one line naming the file."""


def _check_job_targets(targets: Sequence[pathlib.Path], inputs: set[pathlib.Path],
                       source: pathlib.Path, overwrite: bool) -> None:
  """Per-file refusals, before anything is computed for the file; creates nothing."""
  for target in targets:
    try:
      if target.resolve() in inputs or (target.exists() and source.exists()
                                        and os.path.samefile(target, source)):
        raise _Skip(f"{source}: output {target} is an input; refusing to overwrite it")
      if target.is_dir():
        raise _Skip(f"{source}: output {target} is a folder")
      if target.exists() and not overwrite:
        raise _Skip(f"{source}: output {target} exists (pass --overwrite to replace it)")
      blocker = not_a_folder(target.parent)
    except OSError as e:  # e.g. a name too long for the file system
      raise _Skip(f"{source}: cannot use output {target} ({_reason(e)})") from None
    if blocker is not None:
      raise _Skip(f"{source}: cannot create output folder {target.parent} ({blocker} is a file)")


def preflight(command: str, jobs: Sequence[Job], out_dir=None, lr_dir=None,
              overwrite: bool = False, scale: int | None = None
              ) -> tuple[list[Job], list[Result]]:
  """What can be refused before a model is loaded, for the whole run and for each file.

  Args:
    command, jobs, out_dir, lr_dir, overwrite: as for `rescale_files`.
    scale: the model's scale where it is known before loading; `upscale` then refuses the LR
      files that record another one.

  Returns:
    (jobs that passed, failures): a failure for each file that is not a readable image, whose
    output is an input, a folder or (without `overwrite`) an existing file, or that records
    another scale. `rescale_files` checks them again as it goes (files change).

  Raises:
    TargetClash: two outputs would be one file (see `check_targets`).
  """
  check_targets(command, jobs, out_dir, lr_dir)
  inputs = {job.source.resolve() for job in jobs}
  passed, failures = [], []
  for job in jobs:
    try:
      check_source(job.source)
      refusal = scale_mismatch(job.source, scale) if command == "upscale" and scale else None
      if refusal:
        raise _Skip(refusal)
      _check_job_targets([t for _, t in output_targets(command, job, out_dir, lr_dir)], inputs,
                         job.source, overwrite)
    except (_Skip, images.ImageError) as e:
      failures.append(Result(job.source, error=str(e)))
    else:
      passed.append(job)
  return passed, failures


def peek_model(path) -> tuple[int, object] | None:
  """(scale, `ModelConfig` or None) that a model's files state, read without loading it: a
  training workdir's config.json, or an export's manifest.json. None where neither says (a
  .keras, SavedModel or .tflite file: their scale is known once loaded) or they cannot be read
  (loading then says what is wrong)."""
  from fgrn_tf import config, workdir

  path = pathlib.Path(path)
  try:
    if (path / workdir.CONFIG).is_file():
      model = workdir.read_experiment(path).model
      return model.scale, model
    if (path / "manifest.json").is_file():
      info = json.loads((path / "manifest.json").read_text())
      model = info.get("model_config")
      return int(info["scale"]), None if model is None else config.ModelConfig.from_dict(model)
  except Exception:  # foreign or damaged files: not for a peek to judge
    return None
  return None


def default_model_path(scale: int) -> pathlib.Path:
  """Where the shipped weights for a scale live: `models/fgrn_x{scale}/` in the repository."""
  return ROOT / "models" / f"fgrn_x{scale}"


def _make_folders(folder: pathlib.Path, source: pathlib.Path, created: list[pathlib.Path]
                  ) -> None:
  """Makes `folder` and its missing parents, adding each one made to `created`."""
  missing = []
  while not folder.exists() and folder != folder.parent:
    missing.append(folder)
    folder = folder.parent
  if not folder.is_dir():
    raise _Skip(f"{source}: cannot create output folder {missing[0] if missing else folder} "
                f"({folder} is a file)")
  for part in reversed(missing):
    try:
      part.mkdir()
    except FileExistsError:  # made meanwhile by someone else: theirs, not ours to remove
      continue
    except OSError as e:
      raise _Skip(f"{source}: cannot create output folder {part} ({_reason(e)})") from None
    created.append(part)


def _remove_empty(created: list[pathlib.Path]) -> None:
  for folder in reversed(created):
    try:
      folder.rmdir()  # only when empty: files of other jobs or other programs stay
    except OSError:
      pass


def _write(target: pathlib.Path, data: bytes, source: pathlib.Path, overwrite: bool) -> None:
  try:
    images.write_atomic(target, data, overwrite=overwrite)
  except FileExistsError:
    raise _Skip(f"{source}: output {target} exists (pass --overwrite to replace it)") from None
  except OSError as e:
    raise _Skip(f"{source}: cannot write {target} ({_reason(e)})") from None


def _write_all(outputs: Sequence[tuple[pathlib.Path, bytes]], source: pathlib.Path,
               overwrite: bool) -> None:
  """Writes a job's files, all or none: on a failure (or Ctrl-C) the files it had made and the
  folders made for them are removed (a file it replaced under `overwrite` is the new one)."""
  made: list[pathlib.Path] = []
  created: list[pathlib.Path] = []
  try:
    for target, data in outputs:
      _make_folders(target.parent, source, created)
      existed = target.exists()
      _write(target, data, source, overwrite)
      if not existed:
        made.append(target)
  except BaseException:
    for target in made:
      target.unlink(missing_ok=True)
    _remove_empty(created)
    raise


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
    jobs: from `collect_inputs` (best through `preflight` first).
    tile: largest HR window the network sees (0: whole images).
    overwrite: replace existing outputs (never inputs).
    on_tile: progress inside an image, called with (tiles done, tiles in all).

  Raises:
    TargetClash: before the first result, when two outputs would be one file.
    MissingHalfError: the backend (one .tflite file) lacks the half the command needs.
  """
  if command not in COMMANDS:
    raise ValueError(f"unknown command {command!r}; expected one of {COMMANDS}")
  check_targets(command, jobs, out_dir, lr_dir)
  s = backend.scale
  inputs = {job.source.resolve() for job in jobs}
  for job in jobs:
    start = time.perf_counter()
    result = Result(job.source)
    try:
      out_target = None if out_dir is None else pathlib.Path(out_dir) / job.name
      lr_target = pathlib.Path(lr_dir) / job.name if command == "roundtrip" and lr_dir else None
      _check_job_targets([t for _, t in output_targets(command, job, out_dir, lr_dir)], inputs,
                         job.source, overwrite)
      refusal = scale_mismatch(job.source, s) if command == "upscale" else None
      if refusal:
        raise _Skip(refusal)
      try:
        picture = Picture.read(job.source)
      except OSError as e:  # unreadable (permissions, I/O): decode names no file for these
        raise _Skip(f"{job.source}: cannot read ({_reason(e)})") from None
      try:
        if command == "downscale":
          outputs = [(out_target, downscale_picture(backend, picture, tile, on_tile), s)]
        elif command == "upscale":
          outputs = [(out_target, upscale_picture(backend, picture, tile, on_tile), None)]
        else:
          lr = downscale_picture(backend, picture, tile, on_tile)
          # The LR as its file would hold it: a gray LR is stored (and read back) with one channel.
          lr = dataclasses.replace(lr, rgb=lr.rgb8_as_written())
          sr = upscale_picture(backend, lr, tile, on_tile)
          if metrics:
            result.psnr, result.ssim = image_quality(picture.rgb8_as_written(),
                                                     sr.rgb8_as_written(), s)
          outputs = [(out_target, sr, None), (lr_target, lr, s)]
        # Encoded before anything is written, so a file that cannot be encoded leaves none.
        encoded = [(target, encode_picture(target, out, record))
                   for target, out, record in outputs if target is not None]
      except MissingHalfError:
        raise  # a .tflite half asked for the other half: no file can succeed, stop here
      except images.ImageError:
        raise  # already one line naming its file
      except Exception as e:  # TF and the backends raise many kinds: one line each, go on
        raise _Skip(f"{job.source}: {one_line(e)}") from None
      _write_all(encoded, job.source, overwrite)
      result.outputs.extend(target for target, _ in encoded)
    except _Skip as e:
      result.error = str(e)
    except images.ImageError as e:
      result.error = str(e)
    except MemoryError:
      result.error = f"{job.source}: out of memory (try a smaller --tile)"
    result.seconds = time.perf_counter() - start
    yield result
