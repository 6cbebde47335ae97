"""The image codecs an LR image meets on its way to a viewer: PNG, JPEG and WebP, as users run them.

People downscale to save bytes, and what stores or sends the LR (a phone gallery, a chat app,
a CDN) keeps it as JPEG or WebP. Evaluation and the command-line tool pass the LR through the
real encoder and decoder here, so their figures are what such a pipeline gets. The encoders
are OpenCV's: libjpeg-turbo with its default 4:2:0 chroma subsampling, and libwebp. Other
encoders give other pixels at the same quality (TF's JPEG op differs by up to 5 levels), so
every figure names the codec by its spec, e.g. `jpeg:90`.

A spec is `png` (lossless), `jpeg:Q` or `webp:Q` with an integer quality Q in 1..100.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fgrn_tf.errors import FGRNError

KINDS = ("png", "jpeg", "webp")
LOSSY = ("jpeg", "webp")
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


class CodecError(FGRNError, ValueError):
  """A codec spec that cannot be used (unknown kind, quality out of range)."""


@dataclasses.dataclass(frozen=True)
class Codec:
  """One codec at one setting.

  Attributes:
    kind: "png", "jpeg" or "webp".
    quality: 1..100 for the lossy kinds, None for PNG.
  """

  kind: str
  quality: int | None = None

  def __post_init__(self):
    if self.kind not in KINDS:
      raise CodecError(f"unknown codec {self.kind!r}; use png, jpeg:Q or webp:Q (Q in 1..100)")
    if self.kind in LOSSY:
      if not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
        raise CodecError(f"{self.kind} quality must be an integer in 1..100, got "
                         f"{self.quality!r}")
    elif self.quality is not None:
      raise CodecError("png is lossless and takes no quality: write png")

  @property
  def spec(self) -> str:
    return self.kind if self.quality is None else f"{self.kind}:{self.quality}"

  @property
  def lossless(self) -> bool:
    return self.kind == "png"

  @property
  def extension(self) -> str:
    return EXTENSIONS[self.kind]

  def encode(self, rgb: np.ndarray) -> bytes:
    """uint8 RGB `[H, W, 3]` (or gray `[H, W]`) -> the file's bytes."""
    import cv2

    if rgb.dtype != np.uint8:
      raise CodecError(f"{self.spec} encodes 8-bit images; got {rgb.dtype}")
    image = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb  # OpenCV stores BGR
    params = {"png": [],
              "jpeg": [cv2.IMWRITE_JPEG_QUALITY, self.quality or 0],
              "webp": [cv2.IMWRITE_WEBP_QUALITY, self.quality or 0]}[self.kind]
    ok, data = cv2.imencode(self.extension, np.ascontiguousarray(image), params)
    if not ok:
      raise CodecError(f"{self.spec}: the encoder refused a {rgb.shape} image")
    return data.tobytes()

  def decode(self, data: bytes) -> np.ndarray:
    """The bytes of an encoded file -> uint8 RGB `[H, W, 3]`."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
      raise CodecError(f"{self.spec}: could not decode the encoded image")
    return np.ascontiguousarray(image[:, :, ::-1])

  def roundtrip(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """Encodes and decodes `rgb` (uint8 `[H, W, 3]`). Returns (decoded image, encoded bytes)."""
    data = self.encode(rgb)
    return self.decode(data), len(data)


PNG = Codec("png")


def parse(spec: str) -> Codec:
  """`png`, `jpeg:90`, `webp:75` -> Codec; CodecError naming the spec otherwise."""
  text = spec.strip().lower()
  kind, sep, quality = text.partition(":")
  if kind == "jpg":
    kind = "jpeg"
  if kind not in KINDS:
    raise CodecError(f"unknown codec {spec!r}; use png, jpeg:Q or webp:Q (Q in 1..100)")
  if not sep:
    if kind in LOSSY:
      raise CodecError(f"{spec!r} needs a quality: {kind}:Q with Q in 1..100 (e.g. {kind}:90)")
    return Codec(kind)
  try:
    q = int(quality)
  except ValueError:
    raise CodecError(f"codec {spec!r}: quality {quality!r} is not an integer in 1..100") from None
  return Codec(kind, q)


DEFAULT_QUALITY = 90  # what `from_format` gives a lossy format named without a quality


def from_format(kind: str, quality: int | None = None) -> Codec:
  """A format and a quality given apart (the tool's `--lr_format jpeg --quality 90`) -> Codec.

  A lossy format without a quality gets DEFAULT_QUALITY; PNG takes none (Codec refuses one).
  """
  return Codec(kind, DEFAULT_QUALITY if kind in LOSSY and quality is None else quality)


def parse_list(specs: str | list[str] | tuple[str, ...]) -> list[Codec]:
  """A comma-separated list (or a sequence) of specs -> Codecs, in order, without repeats."""
  items = specs.split(",") if isinstance(specs, str) else list(specs)
  codecs = []
  for item in items:
    if not item.strip():
      continue
    codec = parse(item)
    if codec not in codecs:
      codecs.append(codec)
  if not codecs:
    raise CodecError("no codec given; use png, jpeg:Q or webp:Q (Q in 1..100)")
  return codecs


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
  """Bits per pixel of an image of `height` x `width` (the HR size, for rescaling figures)."""
  return 8.0 * num_bytes / (height * width)
