"""The SavedModel's signatures on encoded images: `downscale_bytes` and `upscale_bytes`.

  downscale_bytes: {"hr_bytes": string [N]} -> {"lr_bytes": string [N]}  PNG (or JPEG at the
                   quality chosen at export), ceil(H/s) x ceil(W/s)
  upscale_bytes:   {"lr_bytes": string [N]} -> {"hr_bytes": string [N]}  PNG, s*h x s*w, or the
                   HR size a PNG LR records

The `_bytes` suffix is TF Serving's REST rule: such inputs and outputs travel as {"b64": ...}.
Images of a request may differ in size and format; each is checked, decoded, resized window
by window (`graph_tiling`, the CLI's windows) and encoded on its own, one after another, so a
request holds one image and one window of activations at a time (`image_bytes` converts,
checks and records as the command-line tool does). For servers only: TFLite is converted from
the uint8 signatures.
"""

from __future__ import annotations

import dataclasses

from fgrn_tf.data import codecs, images
from fgrn_tf.export import ExportError, graph_tiling, image_bytes
from fgrn_tf.export.image_bytes import Image, after, check
from fgrn_tf.models.receptive_field import min_tile, receptive_margins
from fgrn_tf.rescale.tiling import DEFAULT_TILE
from fgrn_tf.runtime.backends import BYTES_SIGNATURES

LR_FORMATS = ("png", "jpeg")  # what TF's encoders write (no WebP encoder in TF)


@dataclasses.dataclass(frozen=True)
class ServingOptions:
  """What the bytes signatures are built with, chosen at export.

  Attributes:
    tile: the largest HR window side the network sees at once (the CLI's --tile).
    max_pixels: the most HR pixels of one image (a downscale's input, an upscale's output);
      larger ones are refused before they are decoded.
    lr_codec: the downscale's output, `png` or `jpeg:Q`.
  """

  tile: int = DEFAULT_TILE
  max_pixels: int = images.DEFAULT_MAX_PIXELS
  lr_codec: str = "png"

  def codec(self) -> codecs.Codec:
    return codecs.parse(self.lr_codec)

  def check(self, scale: int, config) -> None:
    """Raises ExportError (one line) for options this model cannot be served with."""
    smallest = min_tile(scale, config)
    if self.tile < smallest:
      raise ExportError(f"--tile {self.tile} is too small for this model (x{scale}): the "
                        f"served tiling needs at least {smallest}")
    if self.max_pixels < 1:
      raise ExportError(f"--max_pixels must be at least 1, not {self.max_pixels}")
    try:
      codec = self.codec()
    except codecs.CodecError as e:
      raise ExportError(f"--lr_format/--quality: {e}") from None
    if codec.kind not in LR_FORMATS:
      raise ExportError(f"the served downscale writes {' or '.join(LR_FORMATS)} (TensorFlow "
                        f"has no {codec.kind} encoder), not {codec.spec}")

  def describe(self, scale: int) -> dict:
    """The manifest's record of these options."""
    codec = self.codec()
    return {"tile": self.tile, "max_pixels": self.max_pixels, "lr_format": codec.spec,
            "lr_encoder": "TensorFlow encode_jpeg (libjpeg-turbo, 4:2:0)" if codec.kind == "jpeg"
            else "TensorFlow encode_png", "scale": scale}


def _each(images_in, one, key: str):
  """`one(data, which)` on every image of a `[N]` string batch, one after another."""
  import tensorflow as tf

  n = tf.size(images_in)
  images_in = after([check(n > 0, "the request holds no images: send at least one in ", key)],
                    images_in)

  def body(k, out):
    which = tf.strings.join(["image ", tf.strings.as_string(k + 1), " of ",
                             tf.strings.as_string(n)])
    return k + 1, out.write(k, one(images_in[k], which))

  out = tf.TensorArray(tf.string, size=n, element_shape=tf.TensorShape([]))
  _, out = tf.while_loop(lambda k, _: k < n, body, (0, out), parallel_iterations=1)
  return out.stack()


def downscale_bytes(model, options: ServingOptions):
  """The `downscale_bytes` function: `[N]` encoded HR images -> `[N]` encoded LR images."""
  import tensorflow as tf

  s, codec = model.scale, options.codec()
  margin = receptive_margins(model.model_config)[0]
  window = options.tile // s

  def one(data, which):
    image = image_bytes.checked_decode(data, which, s, options.max_pixels, up=False)
    shape = tf.shape(image.rgb)
    h, w = shape[0], shape[1]
    fits = check(((h % s == 0) & (w % s == 0)) | ((h >= s) & (w >= s)),
                 which, " is ", h, "x", w, ", smaller than the scale ", s)
    pad = [[0, -h % s], [0, -w % s], [0, 0]]  # the CLI's reflection on the bottom and right
    # The reflections take their input from the check: an image too small to reflect is
    # refused in the check's words, not the pad op's.
    rgb = tf.pad(after([fits], image.rgb), pad, "REFLECT")
    lr = graph_tiling.apply_tiled(lambda x: model.downscale(x[None])[0], rgb, s, 1, window,
                                  margin, 3, tf.uint8)
    alpha = image_bytes.resize_alpha(after([fits], image.alpha), image.deep, s, False, window,
                                     graph_tiling.apply_tiled, pad)
    out = Image(lr, alpha, image.gray, image.deep)
    if codec.kind == "jpeg":
      return image_bytes.encode_jpeg(out, codec.quality)
    return image_bytes.add_record(image_bytes.file_pixels_png(out), h, w, s)

  key_in, key_out = BYTES_SIGNATURES["downscale_bytes"]
  return lambda images_in: {key_out: _each(images_in, one, key_in)}


def upscale_bytes(model, options: ServingOptions):
  """The `upscale_bytes` function: `[N]` encoded LR images -> `[N]` PNG HR images."""
  import tensorflow as tf

  s = model.scale
  margin = receptive_margins(model.model_config)[1]
  window = options.tile // s

  def one(data, which):
    image = image_bytes.checked_decode(data, which, s, options.max_pixels, up=True)
    shape = tf.shape(image.rgb)
    h, w = tf.cast(shape[0], tf.int64), tf.cast(shape[1], tf.int64)
    hr_h, hr_w, recorded = image_bytes.recorded_size_and_scale(data, s, h, w)
    same = check((recorded == 0) | (recorded == s), which, " was made by an x", recorded,
                 " model (fgrn:scale=", recorded, "), but the model is x", s,
                 "; upscale it with an x", recorded, " model")
    rgb = after([same], image.rgb)
    hr = graph_tiling.apply_tiled(lambda x: model.upscale(x[None])[0], rgb, 1, s, window,
                                  margin, 3, tf.uint8)
    alpha = image_bytes.resize_alpha(image.alpha, image.deep, s, True, window,
                                     graph_tiling.apply_tiled)
    out = Image(hr[:hr_h, :hr_w], alpha[:hr_h, :hr_w], image.gray, image.deep)
    return image_bytes.file_pixels_png(out)

  key_in, key_out = BYTES_SIGNATURES["upscale_bytes"]
  return lambda images_in: {key_out: _each(images_in, one, key_in)}


BUILDERS = {"downscale_bytes": downscale_bytes, "upscale_bytes": upscale_bytes}
