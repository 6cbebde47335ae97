"""Encoded images in and out of the served graph: formats, the pixel cap, conversions, records.

The SavedModel's bytes signatures (`saved_model`) take and return files' bytes; this module is
their graph code, TensorFlow ops only (TF Serving runs no Python). Each image is converted as
the command-line tool converts it (`fgrn_tf.data.images.decode`, `fgrn_tf.rescale.picture`):
- gray: rescaled as RGB with three equal channels, written with one (their rounded mean);
- alpha: never seen by the network, resized with MATLAB bicubic at its own depth;
- 16 bits: the colour goes through the network at 8 bits (round(v * 255 / 65535)) and is
  written back as v * 257, alpha keeps its 16 bits;
- a downscaled PNG records the HR size and the scale in tEXt chunks (`fgrn:hr-size`,
  `fgrn:scale`); the upscale crops to a recorded size that fits and refuses another scale.
A JPEG output (the downscale's, at the quality chosen at export) keeps no alpha, no 16 bits
and no record, as the tool's `--codec jpeg:Q`.

Formats read: PNG, JPEG, BMP and WebP (one frame). GIF and animated WebP are refused: their
decoders expand every frame before the first can be used, so a small file can claim gigabytes.
Every size is read from the file's header and compared with the pixel cap before anything is
decoded. A bad image stops its request with INVALID_ARGUMENT ("assertion failed: [<one
sentence>]", or the decoder's own words for a corrupt body); the model keeps serving.
"""

from __future__ import annotations

import dataclasses

from fgrn_tf.rescale.picture import HR_SIZE_KEY, SCALE_KEY
from fgrn_tf.rescale.tiling import ALPHA_MARGIN

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_BYTES = 32
# The formats told apart by their first bytes; their decoders run only on their own kind.
UNKNOWN, PNG, JPEG, BMP, WEBP, GIF = range(6)
READ = "PNG, JPEG, BMP or WebP"
# zlib level of the PNGs written: 1, OpenCV's default, which the CLI writes with. TF's default
# (6) wrote 9% fewer bytes of a 1 MP synthetic photo in 1.6x the time (0.15 s against 0.10).
PNG_COMPRESSION = 1
# The tEXt records sit right after IHDR (pngtext.add_text); one that a re-encoder moved
# further into the file is not looked for.
RECORD_SEARCH_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class Image:
  """A decoded image as the graph handles it.

  Attributes:
    rgb: uint8 `[H, W, 3]`, what the network sees.
    alpha: uint16 `[H, W, k]`, k = 1 with alpha, 0 without (8-bit alpha keeps values 0..255).
    gray: scalar bool, one colour channel in the file.
    deep: scalar bool, 16 bits per sample in the file.
  """

  rgb: object
  alpha: object
  gray: object
  deep: object


def _tf():
  import tensorflow as tf

  return tf


def check(condition, *parts):
  """An assertion op failing with the sentence joined from `parts` (strings or tensors)."""
  tf = _tf()
  text = tf.strings.join([p if isinstance(p, str) else tf.strings.as_string(p) for p in parts])
  return tf.debugging.Assert(condition, [text], summarize=1)


def after(checks, value):
  """`value`, computed only once every op of `checks` has run."""
  tf = _tf()
  with tf.control_dependencies(checks):
    return tf.identity(value)


def header(data):
  """The first HEADER_BYTES bytes of `data` as uint8 `[HEADER_BYTES]`, zero-padded."""
  tf = _tf()
  head = tf.strings.join([tf.strings.substr(data, 0, HEADER_BYTES), b"\0" * HEADER_BYTES])
  return tf.io.decode_raw(tf.strings.substr(head, 0, HEADER_BYTES), tf.uint8)


def _bytes_at(head, start, count):
  return _tf().cast(head[start:start + count], "int64")


def _big_endian(head, start, count):
  b = _bytes_at(head, start, count)
  return sum(b[k] * (256 ** (count - 1 - k)) for k in range(count))


def _little_endian(head, start, count):
  b = _bytes_at(head, start, count)
  return sum(b[k] * (256 ** k) for k in range(count))


def _starts_with(head, prefix: bytes, at: int = 0):
  tf = _tf()
  return tf.reduce_all(head[at:at + len(prefix)] == tf.constant(list(prefix), tf.uint8))


def sniff(head):
  """The format code (PNG, JPEG, ...; UNKNOWN) from a file's first bytes."""
  tf = _tf()
  kinds = [(PNG, _starts_with(head, PNG_SIGNATURE)),
           (JPEG, _starts_with(head, b"\xff\xd8\xff")),
           (BMP, _starts_with(head, b"BM")),
           (WEBP, _starts_with(head, b"RIFF") & _starts_with(head, b"WEBP", 8)),
           (GIF, _starts_with(head, b"GIF8"))]
  code = tf.constant(UNKNOWN)
  for kind, found in reversed(kinds):
    code = tf.where(found, kind, code)
  return code


def header_size(data, head, kind):
  """(height, width) int64 from the header of a file of format `kind` (0, 0 if unknown)."""
  tf = _tf()

  def png():
    return _big_endian(head, 20, 4), _big_endian(head, 16, 4)

  def jpeg():  # the frame header may follow long metadata: TF's own parser finds it
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
    return shape[0], shape[1]

  def bmp():
    h = _little_endian(head, 22, 4)
    h = tf.where(h >= 2**31, 2**32 - h, h)  # a negative height: rows stored top-down
    return h, _little_endian(head, 18, 4)

  def webp():
    lossy, lossless = _little_endian(head, 26, 2), _little_endian(head, 21, 4)
    sizes = {  # the first chunk: simple lossy, simple lossless, extended
        b"VP8 ": (_little_endian(head, 28, 2) % 16384, lossy % 16384),
        b"VP8L": ((lossless // 16384) % 16384 + 1, lossless % 16384 + 1),
        b"VP8X": (_little_endian(head, 27, 3) + 1, _little_endian(head, 24, 3) + 1)}
    h = w = tf.constant(0, tf.int64)
    for name, (hh, ww) in sizes.items():
      found = _starts_with(head, name, 12)
      h, w = tf.where(found, hh, h), tf.where(found, ww, w)
    return h, w

  def none():
    return tf.constant(0, tf.int64), tf.constant(0, tf.int64)

  return tf.switch_case(kind, [none, png, jpeg, bmp, webp, none])


def _split_channels(pixels, to_rgb8):
  """A decoded `[H, W, c]` image -> Image parts (rgb, alpha, gray), as OpenCV's decode gives
  them to the CLI: 1 channel is gray; 2 (gray + alpha) and 4 channels carry alpha."""
  tf = _tf()
  c = tf.shape(pixels)[2]
  colour = tf.cond(c == 3, lambda: pixels,
                   lambda: tf.gather(pixels, tf.where(c <= 2, [0, 0, 0], [0, 1, 2]), axis=2))
  alpha = tf.gather(pixels, tf.reshape(c - 1, [1])[:tf.cast(c % 2 == 0, tf.int32)], axis=2)
  return to_rgb8(colour), tf.cast(alpha, tf.uint16), c == 1


def to_uint8(v16):
  """16-bit samples -> round(v * 255 / 65535) as uint8 (images.to_uint8), without floats:
  v / 257 rounded, its remainder never a tie."""
  tf = _tf()
  q = v16 // 257
  return tf.cast(q + tf.cast(v16 - q * 257 >= 129, tf.uint16), tf.uint8)


def decode(data, kind, head):
  """An Image from the bytes of a file of format `kind` (PNG, JPEG, BMP or WEBP)."""
  tf = _tf()
  keep = lambda x: x  # noqa: E731

  def png():
    deep = _bytes_at(head, 24, 1)[0] == 16
    return tf.cond(
        deep,
        lambda: (*_split_channels(tf.io.decode_png(data, 0, tf.uint16), to_uint8),
                 tf.constant(True)),
        lambda: (*_split_channels(tf.io.decode_png(data, 0, tf.uint8), keep), tf.constant(False)))

  def eight_bit(pixels):
    return (*_split_channels(pixels, keep), tf.constant(False))

  def jpeg():
    # TF's default DCT (the fast integer one) differs from OpenCV's by up to 7 levels; the
    # accurate one gives the CLI's pixels exactly.
    return eight_bit(tf.io.decode_jpeg(data, 0, dct_method="INTEGER_ACCURATE"))

  def bmp():
    return eight_bit(tf.io.decode_bmp(data, 0))

  def webp():
    return eight_bit(tf.io.decode_webp(data, 0)[0])

  rgb, alpha, gray, deep = tf.switch_case(kind - PNG, [png, jpeg, bmp, webp])
  return Image(tf.ensure_shape(rgb, [None, None, 3]), tf.ensure_shape(alpha, [None, None, None]),
               gray, tf.convert_to_tensor(deep))


def checked_decode(data, which, scale: int, cap: int, up: bool):
  """Checks one request image (not empty, a format read, within the cap) and decodes it.

  Args:
    data: string scalar, the file's bytes.
    which: string scalar naming the image in messages ("image 2 of 3").
    scale: the model's scale.
    cap: the most HR pixels (the input of a downscale, the output of an upscale).
    up: the image is an upscale's input.

  Returns:
    The Image, decoded after every check passed.
  """
  tf = _tf()
  head = header(data)
  kind = sniff(head)
  size = tf.strings.length(data)
  known = check(size > 0, which, " is empty (0 bytes): send the bytes of a ", READ, " file")
  with tf.control_dependencies([known]):
    kind = tf.identity(kind)
  readable = check(
      (kind != UNKNOWN) & (kind != GIF), which, " is not a ", READ, " file",
      tf.where(kind == GIF, " (GIF is refused: its decoder expands every frame at once; send "
               "PNG)", " (it does not start like one)"))
  animated = check(tf.logical_not((kind == WEBP) & (_bytes_at(head, 20, 1)[0] // 2 % 2 == 1)
                                  & _starts_with(head, b"VP8X", 12)),
                   which, " is an animated WebP, which is refused: send one frame as PNG")
  with tf.control_dependencies([readable, animated]):
    h, w = header_size(data, head, kind)
  hr_h, hr_w = (h * scale, w * scale) if up else (h, w)
  pixels = hr_h * hr_w
  shown = [which, " is ", h, "x", w]
  if up:
    shown += [" and would upscale to ", hr_h, "x", hr_w]
  # No apostrophe: Assert escapes it in the message.
  within = check(pixels <= cap, *shown, " = ", pixels, " pixels, over the cap of ", cap,
                 " this model was exported with (fgrn-export --max_pixels)")
  sane = check((h > 0) & (w > 0), which, " claims a size of ", h, "x", w,
               ": its header is damaged or cut short")
  with tf.control_dependencies([within, sane]):
    return decode(tf.identity(data), kind, head)


# ---- writing --------------------------------------------------------------------------------


def _gray(rgb):
  """uint8 `[H, W, 3]` -> `[H, W, 1]`, the rounded mean (picture.Picture.file_array): round of
  s / 3 never ties, so (s + 1) // 3."""
  tf = _tf()
  s = tf.reduce_sum(tf.cast(rgb, tf.uint16), axis=2, keepdims=True)
  return tf.cast((s + 1) // 3, tf.uint8)


def file_pixels_png(image: Image):
  """The PNG bytes of an Image as the CLI writes it: gray, 16 bits, alpha as in the input."""
  tf = _tf()
  has_alpha = tf.shape(image.alpha)[2] > 0
  colour = tf.cond(image.gray & tf.logical_not(has_alpha), lambda: _gray(image.rgb),
                   lambda: image.rgb)

  def deep():
    return tf.io.encode_png(tf.concat([tf.cast(colour, tf.uint16) * 257, image.alpha], 2),
                            PNG_COMPRESSION)

  def eight():
    return tf.io.encode_png(tf.concat([colour, tf.cast(image.alpha, tf.uint8)], 2),
                            PNG_COMPRESSION)

  return tf.cond(image.deep, deep, eight)


def encode_jpeg(image: Image, quality: int):
  """JPEG bytes of an Image at `quality`, 4:2:0 (the tool's `--codec jpeg:Q`: no alpha, 8 bits,
  gray written gray)."""
  tf = _tf()
  colour = tf.cond(image.gray & (tf.shape(image.alpha)[2] == 0), lambda: _gray(image.rgb),
                   lambda: image.rgb)
  return tf.io.encode_jpeg(colour, quality=quality, chroma_downsampling=True)


def crc32(data):
  """zlib.crc32 of a short string scalar, as an int64 scalar."""
  tf = _tf()
  raw = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int64)
  table = tf.constant(_crc_byte_table(), tf.int64)

  def step(k, c):
    index = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(c, raw[k]), 255)
    return k + 1, tf.bitwise.bitwise_xor(tf.gather(table, index), tf.bitwise.right_shift(c, 8))

  _, c = tf.while_loop(lambda k, _: k < tf.size(raw), step,
                       (tf.constant(0), tf.constant(0xFFFFFFFF, tf.int64)))
  return tf.bitwise.bitwise_xor(c, 0xFFFFFFFF)


def _crc_byte_table() -> list[int]:
  """The reflected CRC-32 table (polynomial 0xEDB88320) zlib uses."""
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (0xEDB88320 ^ (c >> 1)) if c & 1 else c >> 1
    table.append(c)
  return table


def _be32(value):
  """A non-negative int64 scalar < 2**32 as 4 big-endian bytes (string scalar)."""
  tf = _tf()
  table = tf.constant([bytes([b]) for b in range(256)])
  digits = tf.stack([(value // 256 ** k) % 256 for k in (3, 2, 1, 0)])
  return tf.strings.reduce_join(tf.gather(table, digits))


def text_chunk(key: str, value):
  """A PNG tEXt chunk `key`=`value` (value a string scalar), its CRC computed in the graph."""
  tf = _tf()
  body = tf.strings.join([b"tEXt" + key.encode("latin-1") + b"\0", value])
  length = tf.cast(tf.strings.length(body) - 4, tf.int64)
  return tf.strings.join([_be32(length), body, _be32(crc32(body))])


def add_record(png, hr_h, hr_w, scale: int):
  """`png` with the HR size and the scale recorded after IHDR, as `pngtext.add_text` does."""
  tf = _tf()
  ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4
  size = tf.strings.join([tf.strings.as_string(hr_h), "x", tf.strings.as_string(hr_w)])
  chunks = tf.strings.join([text_chunk(HR_SIZE_KEY, size),
                            text_chunk(SCALE_KEY, tf.constant(str(scale)))])
  return tf.strings.join([tf.strings.substr(png, 0, ihdr_end), chunks,
                          tf.strings.substr(png, ihdr_end, tf.strings.length(png) - ihdr_end)])


def read_record(data, key: str):
  """The value of a tEXt record `key` near a PNG's start, and whether it was found (its CRC
  right); picture.read_record's reading, for records where `add_record` puts them."""
  tf = _tf()
  marker = b"tEXt" + key.encode("latin-1") + b"\0"
  head = tf.strings.substr(data, 0, RECORD_SEARCH_BYTES)
  parts = tf.strings.split(head, sep=marker)
  found = tf.size(parts) >= 2

  def value():
    before, rest = parts[0], parts[1]
    at = tf.strings.length(before)
    length = tf.cast(tf.io.decode_raw(tf.strings.substr(before, tf.maximum(at - 4, 0), 4),
                                      tf.uint8), tf.int64)
    length = tf.reduce_sum(length * tf.constant([2**24, 2**16, 2**8, 1], tf.int64)[
        :tf.size(length)])
    n = tf.cast(length, tf.int32) - len(marker) + 4
    ok = (at >= 4) & (n >= 0) & (n + 4 <= tf.strings.length(rest))
    n = tf.where(ok, n, 0)
    text = tf.strings.substr(rest, 0, n)
    crc = tf.io.decode_raw(tf.strings.substr(
        tf.strings.join([tf.strings.substr(rest, n, 4), b"\0\0\0\0"]), 0, 4), tf.uint8)
    stored = tf.reduce_sum(tf.cast(crc, tf.int64) * tf.constant([2**24, 2**16, 2**8, 1],
                                                                tf.int64))
    right = ok & (stored == crc32(tf.strings.join([marker, text])))
    return text, right

  return tf.cond(found, value, lambda: (tf.constant(""), tf.constant(False)))


def recorded_size_and_scale(data, scale: int, h, w):
  """(HR height, width) to crop an upscale of an `h` x `w` LR to, and the recorded scale (0:
  none), from the PNG records (picture.upscale_picture's rules: a size is used only when the
  LR is that size's LR)."""
  tf = _tf()
  size, has_size = read_record(data, HR_SIZE_KEY)
  has_size &= tf.strings.regex_full_match(size, r"[0-9]{1,9}x[0-9]{1,9}")
  numbers = tf.strings.to_number(
      tf.strings.split(tf.where(has_size, size, "0x0"), "x"), tf.int64)
  hr_h, hr_w = numbers[0], numbers[1]
  fits = has_size & ((hr_h + scale - 1) // scale == h) & ((hr_w + scale - 1) // scale == w)
  recorded, has_scale = read_record(data, SCALE_KEY)
  has_scale &= tf.strings.regex_full_match(recorded, r"[0-9]{1,6}")
  value = tf.strings.to_number(tf.where(has_scale, recorded, "0"), tf.int64)
  value = tf.where(value >= 2, value, 0)  # as picture.read_record: a scale below 2 is no record
  return tf.where(fits, hr_h, h * scale), tf.where(fits, hr_w, w * scale), value


def resize_alpha(alpha, deep, scale: int, up: bool, window: int, tiled, pad=None):
  """An Image's alpha `[H, W, k]` resized as tiling.resize_alpha does, tiled by `tiled`
  (graph_tiling.apply_tiled) after reflecting by `pad` (a downscale's); `[.., .., 0]` stays
  empty."""
  from fgrn_tf.data.imresize import bicubic_downscale, bicubic_upscale  # Keras: on use

  tf = _tf()
  top = tf.where(deep, 65535.0, 255.0)

  def fn(x):
    resize = bicubic_upscale if up else bicubic_downscale
    y = resize(tf.cast(x[None], tf.float32), scale)[0]
    return tf.cast(tf.clip_by_value(tf.round(y), 0.0, top), tf.uint16)

  def resized():
    units = (1, scale) if up else (scale, 1)
    padded = alpha if pad is None else tf.pad(alpha, pad, "REFLECT")
    return tiled(fn, padded, *units, window, ALPHA_MARGIN, 1, tf.uint16)

  def empty():  # a 0-channel plane cannot be reflected: only its size is computed
    shape = tf.shape(alpha)
    if up:
      return tf.zeros(tf.stack([shape[0] * scale, shape[1] * scale, 0]), tf.uint16)
    return tf.zeros(tf.stack([(shape[0] + scale - 1) // scale,
                              (shape[1] + scale - 1) // scale, 0]), tf.uint16)

  return tf.cond(tf.shape(alpha)[2] > 0, resized, empty)
