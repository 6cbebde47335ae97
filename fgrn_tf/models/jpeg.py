"""A differentiable JPEG round trip: what OpenCV's `imencode('.jpg')` + `imdecode` do, as Keras ops.

Codec-aware training (issue 16) puts the LR image through JPEG inside the training step, so the
codec has to be tensor ops that run in graph mode, under tf.distribute and under XLA, not a
call into OpenCV. It is `keras.ops` alone, so it runs unchanged on the TensorFlow and JAX
backends (JAX keeps float64 off unless asked: call `require_float64()` first there). The stages
are libjpeg-turbo's baseline path with the defaults OpenCV uses (`fgrn_tf.data.codecs`:
quality Q, 4:2:0, the "islow" integer DCTs, fancy upsampling):

  RGB -> YCbCr (JFIF, 16-bit fixed point, jccolor.c) -> 2x2 chroma average (jcsample.c, with its
  alternating rounding bias) -> edge replication to whole MCUs (jcprepct.c) -> level shift ->
  8x8 FDCT (jfdctint.c) -> quantization by the IJG tables scaled for Q (jcparam.c, jcdctmgr.c) ->
  dequantization -> 8x8 IDCT (jidctint.c) -> triangular "fancy" chroma upsampling (jdsample.c)
  -> YCbCr -> RGB (jdcolor.c) -> 8-bit samples.

Every stage is computed twice. Its value is an exact emulation of libjpeg-turbo's fixed-point
code, carried in float64, where each intermediate is an integer far below 2^53 so sums, products
and the power-of-two shifts are exact: with rounding="ste" the output equals OpenCV's decoded
file bit for bit (tests/test_jpeg.py holds it to that on Set5 and on odd-sized images). Its
gradient is that of the same stage in float32 real arithmetic (orthonormal DCTs, plain averages
and triangle weights), with every rounding and clamp straight-through as in `quantize`. The
islow DCTs can be emulated with matrix products because each 1-D pass of jfdctint.c/jidctint.c
is a fixed integer combination of its 8 inputs followed by one rounding shift (DESCALE); the
integer matrices below are those passes run on unit vectors.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

# The IJG tables (JPEG spec Annex K.1), which jpeg_set_quality scales; row-major 8x8.
LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99], np.int32).reshape(8, 8)
CHROMA_TABLE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, np.int32).reshape(8, 8)
ROUNDING_MODES = ("ste", "cubic")

# jfdctint.c / jidctint.c constants: FIX(x) with CONST_BITS = 13.
_C = dict(c0298=2446, c0390=3196, c0541=4433, c0765=6270, c0899=7373, c1175=9633, c1501=12299,
          c1847=15137, c1961=16069, c2053=16819, c2562=20995, c3072=25172)
_CONST_BITS, _PASS1_BITS = 13, 2


def _fdct_pass(d):
  """One 1-D pass of jpeg_fdct_islow before its DESCALE (the DC/4 terms shifted up to share it)."""
  c = _C
  tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
  tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
  tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
  tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
  tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
  out = [None] * 8
  # LEFT_SHIFT(x, PASS1_BITS) == DESCALE(x << CONST_BITS, CONST_BITS - PASS1_BITS), and pass 2's
  # DESCALE(x, PASS1_BITS) == DESCALE(x << CONST_BITS, CONST_BITS + PASS1_BITS): one shift per pass.
  out[0] = (tmp10 + tmp11) * (1 << _CONST_BITS)
  out[4] = (tmp10 - tmp11) * (1 << _CONST_BITS)
  z1 = (tmp12 + tmp13) * c["c0541"]
  out[2] = z1 + tmp13 * c["c0765"]
  out[6] = z1 - tmp12 * c["c1847"]
  z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
  z5 = (z3 + z4) * c["c1175"]
  tmp4, tmp5 = tmp4 * c["c0298"], tmp5 * c["c2053"]
  tmp6, tmp7 = tmp6 * c["c3072"], tmp7 * c["c1501"]
  z1, z2 = -z1 * c["c0899"], -z2 * c["c2562"]
  z3, z4 = -z3 * c["c1961"] + z5, -z4 * c["c0390"] + z5
  out[7], out[5] = tmp4 + z1 + z3, tmp5 + z2 + z4
  out[3], out[1] = tmp6 + z2 + z3, tmp7 + z1 + z4
  return out


def _idct_pass(d):
  """One 1-D pass of jpeg_idct_islow before its DESCALE."""
  c = _C
  z1 = (d[2] + d[6]) * c["c0541"]
  tmp2, tmp3 = z1 - d[6] * c["c1847"], z1 + d[2] * c["c0765"]
  tmp0, tmp1 = (d[0] + d[4]) * (1 << _CONST_BITS), (d[0] - d[4]) * (1 << _CONST_BITS)
  tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
  tmp3, tmp2, tmp1, tmp0 = d[1], d[3], d[5], d[7]
  z4, z3, z2, z1 = tmp1 + tmp3, tmp0 + tmp2, tmp1 + tmp2, tmp0 + tmp3
  z5 = (z3 + z4) * c["c1175"]
  tmp3, tmp2 = tmp3 * c["c1501"], tmp2 * c["c3072"]
  tmp1, tmp0 = tmp1 * c["c2053"], tmp0 * c["c0298"]
  z4, z3 = -z4 * c["c0390"] + z5, -z3 * c["c1961"] + z5
  z1, z2 = -z1 * c["c0899"], -z2 * c["c2562"]
  tmp3, tmp2, tmp1, tmp0 = tmp3 + z1 + z4, tmp2 + z2 + z3, tmp1 + z2 + z4, tmp0 + z1 + z3
  return [tmp10 + tmp3, tmp11 + tmp2, tmp12 + tmp1, tmp13 + tmp0,
          tmp13 - tmp0, tmp12 - tmp1, tmp11 - tmp2, tmp10 - tmp3]


def _pass_matrix(one_pass) -> np.ndarray:
  """`[out, in]` integer matrix of a linear 1-D pass."""
  unit = np.eye(8, dtype=np.int64)
  return np.stack(one_pass([unit[j] for j in range(8)])).astype(np.float64)


_FDCT_ISLOW = _pass_matrix(_fdct_pass)
_IDCT_ISLOW = _pass_matrix(_idct_pass)
# Orthonormal DCT-II, D[k, j]: the float stand-in for the gradient. islow's output is 8x it.
_DCT = np.array([[math.sqrt((1 if k == 0 else 2) / 8) * math.cos((2 * j + 1) * k * math.pi / 16)
                  for j in range(8)] for k in range(8)], np.float32)


def _fix16(x: float) -> int:
  """jccolor.c / jdcolor.c FIX(x): 16 fractional bits, rounded."""
  return int(x * 65536 + 0.5)


# RGB -> YCbCr rows (Y, Cb, Cr); the float track uses the JFIF values the constants stand for.
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.16874, -0.33126, 0.5],
                        [0.5, -0.41869, -0.08131]])
_RGB_TO_YCC_FIX = np.array([[_fix16(v) if v >= 0 else -_fix16(-v) for v in row]
                            for row in _RGB_TO_YCC], np.float64)
# jccolor.c's rounding: +1/2 for Y; 128 + 1/2 - 2^-16 for Cb, Cr, so that 255 stays 255.
_YCC_OFFSET_FIX = np.array([32768, (128 << 16) + 32767, (128 << 16) + 32767], np.float64)


def require_float64():
  """Makes float64 tensors available, which the exact track needs; call it before `jpeg`.

  JAX truncates float64 to float32 unless `jax_enable_x64` is on, and that is a process-wide
  switch (it changes JAX's default integer and float types), so it is left to the caller rather
  than flipped on import. TensorFlow always has float64: there this does nothing.
  """
  if keras.backend.backend() == "jax":
    import jax

    jax.config.update("jax_enable_x64", True)


def _check_float64():
  # A truncated float64 track would not fail: it would silently round the integers it carries.
  if keras.backend.standardize_dtype(ops.convert_to_tensor(1.0, "float64").dtype) != "float64":
    raise ValueError(f"jpeg needs float64, which the {keras.backend.backend()} backend has off: "
                     "call fgrn_tf.models.jpeg.require_float64() first")


def quality_table(quality):
  """The quantization tables libjpeg's `jpeg_set_quality(cinfo, quality, TRUE)` installs.

  Args:
    quality: scalar or `[N]`, int or float; rounded to the nearest integer and clamped to 1..100
      (libjpeg takes an int).

  Returns:
    `(luma, chroma)`: float32 `[8, 8]` (scalar quality) or `[N, 8, 8]`, integers in 1..255, in
    natural (row-major) order: entry [u, v] divides DCT coefficient (vertical u, horizontal v).
  """
  q = ops.clip(ops.round(ops.cast(quality, "float64")), 1.0, 100.0)
  # jpeg_quality_scaling: integer division 5000 / q below 50.
  scale = ops.where(q < 50, _floor_div(5000.0, q), 200.0 - 2.0 * q)[..., None, None]

  def scaled(base):
    entries = _floor_div(ops.convert_to_tensor(base, "float64") * scale + 50.0, 100.0)
    return ops.cast(ops.clip(entries, 1.0, 255.0), "float32")  # force_baseline

  return scaled(LUMA_TABLE), scaled(CHROMA_TABLE)


def jpeg(images, quality, rounding: str = "ste"):
  """JPEG-compresses and decodes a batch the way OpenCV (libjpeg-turbo) does, differentiably.

  Args:
    images: float `[N, H, W, 3]` RGB in [0, 1], any H, W >= 1 (static or not). Values are first
      put on the 8-bit grid the encoder sees (clamped and rounded, straight-through).
    quality: JPEG quality in 1..100: a scalar, or `[N]` for one quality per example; int or float
      (see `quality_table`).
    rounding: how the quantized DCT coefficients are rounded. "ste": exactly as libjpeg-turbo
      (the output is the decoded file bit for bit), with the identity as gradient. "cubic":
      round(c) + (c - round(c))^3 in the forward pass too (Shin & Song 2017), a smooth
      approximation whose gradient sees the quantization; its output is near, not equal to, the
      real decoded file. Every other rounding and clamp is libjpeg's in the forward pass and
      straight-through in the backward pass, in both modes.

  Returns:
    float32 `[N, H, W, 3]` in [0, 1] on the 8-bit grid (k * (1 / 255), so round(255 y) = k):
    the decoded image.

  Raises:
    ValueError: for an unknown `rounding`, a shape other than `[N, H, W, 3]`, or a backend
      without float64 (JAX before `require_float64()`).
  """
  if rounding not in ROUNDING_MODES:
    raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
  _check_float64()
  x = ops.cast(images, "float32")  # float16 or float64 callers too; the arithmetic is float32
  if len(x.shape) != 4 or x.shape[-1] != 3:
    raise ValueError(f"jpeg expects [N, H, W, 3] RGB, got shape {x.shape}")
  # ops.shape gives ints where the size is static (always, off TensorFlow), which keeps shapes
  # static and makes the upsampling choice at trace time; scalar tensors where it is not.
  n, h, w = ops.shape(x)[:3]
  luma_q, chroma_q = quality_table(ops.broadcast_to(ops.reshape(quality, (-1,)), (n,)))

  x255 = x * 255.0
  rgb = _value(ops.round(ops.clip(x255, 0.0, 255.0)), x255)
  # Whole 16x16 MCUs by edge replication: what jcsample.c (right) and jcprepct.c (bottom) do to
  # every plane the image's pixels reach.
  rgb = _replicate(_replicate(rgb, 1, _round_up(h, 16)), 2, _round_up(w, 16))

  ycc_float = ops.einsum("nhwc,kc->nkhw", rgb, ops.convert_to_tensor(_RGB_TO_YCC, "float32"))
  ycc_float += ops.convert_to_tensor([0.0, 128.0, 128.0], "float32")[:, None, None]
  ycc_exact = ops.floor(
      (ops.einsum("nhwc,kc->nkhw", _exact(rgb), ops.convert_to_tensor(_RGB_TO_YCC_FIX, "float64"))
       + ops.convert_to_tensor(_YCC_OFFSET_FIX, "float64")[:, None, None]) / 65536.0)
  ycc = _value(ycc_exact, ycc_float)  # [N, 3, H16, W16]

  hc, wc = (h + 1) // 2, (w + 1) // 2  # the chroma planes' own size ("downsampled_width")
  chroma = _downsample(ycc[:, 1:])
  # jcprepct.c pads the downsampled planes' bottom by repeating their last real row.
  chroma = ops.take(chroma, ops.minimum(ops.arange(ops.shape(chroma)[2]), hc - 1), axis=2)

  luma = _code_planes(ycc[:, :1], luma_q, rounding)[:, :, :h, :w]
  chroma = _upsample(_code_planes(chroma, chroma_q, rounding)[:, :, :hc, :wc], wc)
  chroma = chroma[:, :, :h, :w]
  out = _to_rgb(luma[:, 0], chroma[:, 0] - 128.0, chroma[:, 1] - 128.0)
  # Gives TensorFlow back the static sizes that the dynamic-size slicing above may have lost
  # (set_shape in backend-neutral form; a no-op reshape elsewhere).
  return ops.reshape(out, ops.shape(x))


@ops.custom_gradient
def _zero_with_gradient(surrogate):
  """Zeros in the forward pass; the gradient goes to `surrogate` unchanged.

  Not `surrogate - stop_gradient(surrogate)`: that is zero only if both copies are computed
  identically, which nothing promises once a compiler fuses them (an ulp left over would move a
  value off the integers the next stage floors). The forward pass also never needs `surrogate`.
  """

  def grad(*args, upstream=None):
    # TensorFlow and JAX pass the upstream gradient positionally, torch as `upstream=`.
    return args[0] if upstream is None else upstream

  return ops.zeros_like(surrogate), grad


def _value(exact, surrogate):
  """`exact` (bit for bit) in the forward pass, with `surrogate`'s gradient."""
  return ops.cast(ops.stop_gradient(exact), "float32") + _zero_with_gradient(surrogate)


def _exact(v):
  """A stage's forward value (small integers, exact in float32) for the float64 emulation."""
  return ops.cast(ops.stop_gradient(v), "float64")


def _round_up(size, multiple: int):
  return (size + multiple - 1) // multiple * multiple


def _replicate(x, axis: int, size):
  """Extends `axis` to `size` by repeating its last entry (size >= the current length)."""
  return ops.take(x, ops.minimum(ops.arange(size), ops.shape(x)[axis] - 1), axis=axis)


def _floor_div(a, b):
  """floor(a / b) of float64 integers a >= 0, b >= 1, exactly.

  Grappler and XLA may turn a division by a constant into a product with its rounded reciprocal,
  which can put an exact quotient k just below k. a + 1/2 moves the quotient by half the 1/b
  between the quotients integers can have, so no such rounding carries it across an integer.
  """
  return ops.floor((a + 0.5) / b)


def _descale(x, bits: int):
  """libjpeg's DESCALE: x / 2^bits rounded half up (exact on float64 integers)."""
  return ops.floor((x + float(1 << (bits - 1))) * (1.0 / (1 << bits)))


def _downsample(planes):
  """h2v2_downsample: 2x2 box average of `[N, P, 2h, 2w]`, rounded with bias 1, 2, 1, 2, ..."""
  s = ops.shape(planes)
  boxes = ops.reshape(planes, (s[0], s[1], s[2] // 2, 2, s[3] // 2, 2))
  total = ops.sum(_exact(boxes), axis=(3, 5))
  # The bias alternates along each output row so that halves round up and down equally often.
  bias = 1.0 + ops.cast(ops.arange(s[3] // 2) % 2, "float64")
  return _value(ops.floor((total + bias) / 4.0), ops.mean(boxes, axis=(3, 5)))


def _to_blocks(planes):
  """`[N, P, H, W]` (multiples of 8) -> `[N, P, H/8, 8, W/8, 8]`."""
  s = ops.shape(planes)
  return ops.reshape(planes, (s[0], s[1], s[2] // 8, 8, s[3] // 8, 8))


def _from_blocks(blocks):
  s = ops.shape(blocks)
  return ops.reshape(blocks, (s[0], s[1], s[2] * 8, s[4] * 8))


def _vertical(matrix, blocks):
  """Applies `[8, 8]` matrix to each block's columns (axis -3)."""
  return ops.einsum("ij,npbjcl->npbicl", ops.convert_to_tensor(matrix, blocks.dtype), blocks)


def _horizontal(matrix, blocks):
  """Applies `[8, 8]` matrix to each block's rows (the last axis)."""
  return ops.einsum("kl,npbjcl->npbjck", ops.convert_to_tensor(matrix, blocks.dtype), blocks)


def _code_planes(planes, table, rounding: str):
  """Level shift, FDCT, quantization, dequantization, IDCT: `[N, P, H, W]` samples in 0..255.

  Args:
    planes: float32 `[N, P, H, W]` (H, W multiples of 8), integer sample values 0..255.
    table: float32 `[N, 8, 8]` quantization table per example.
    rounding: "ste" or "cubic" (see `jpeg`).

  Returns:
    float32 `[N, P, H, W]`, the decoded samples, integers in 0..255.
  """
  q = table[:, None, None, :, None, :]  # to [N, P, H/8, 8(u), W/8, 8(v)]
  blocks = _to_blocks(planes) - 128.0
  # jfdctint.c: rows first, then columns; the result is 8x the orthonormal DCT.
  rows = _descale(_horizontal(_FDCT_ISLOW, _exact(blocks)), _CONST_BITS - _PASS1_BITS)
  dct8 = _descale(_vertical(_FDCT_ISLOW, rows), _CONST_BITS + _PASS1_BITS)
  q8 = 8.0 * ops.cast(q, "float64")
  coef_float = _horizontal(_DCT, _vertical(_DCT, blocks)) / q
  if rounding == "ste":
    # jcdctmgr.c's reciprocal division is exactly this: round half away from zero.
    exact_coef = ops.sign(dct8) * _floor_div(ops.abs(dct8) + q8 / 2.0, q8)
    coef = _value(exact_coef, coef_float)
  else:
    unrounded = _value(dct8 / q8, coef_float)
    nearest = ops.stop_gradient(ops.sign(unrounded) * ops.floor(ops.abs(unrounded) + 0.5))
    coef = nearest + (unrounded - nearest) ** 3
  dequantized = coef * q
  samples_float = _horizontal(_DCT.T, _vertical(_DCT.T, dequantized)) + 128.0
  if rounding == "ste":
    # jidctint.c: columns first, then rows; range_limit clamps to 0..255.
    cols = _descale(_vertical(_IDCT_ISLOW, _exact(dequantized)), _CONST_BITS - _PASS1_BITS)
    samples = _descale(_horizontal(_IDCT_ISLOW, cols), _CONST_BITS + _PASS1_BITS + 3) + 128.0
  else:
    # The coefficients are not integers, so there is no islow to emulate: libjpeg's output
    # stage on the real-valued IDCT (round half up, clamp).
    samples = ops.floor(_exact(samples_float) + 0.5)
  samples = _value(ops.clip(samples, 0.0, 255.0), samples_float)
  return _from_blocks(samples)


def _neighbours(x, axis: int):
  """`x` shifted by one along `axis` both ways, edge replicated: (previous, next)."""
  size = ops.shape(x)[axis]
  index = ops.arange(size)
  return (ops.take(x, ops.maximum(index - 1, 0), axis=axis),
          ops.take(x, ops.minimum(index + 1, size - 1), axis=axis))


def _interleave(even, odd, axis: int):
  """Alternates `even` and `odd` along `axis` (doubling it)."""
  s = ops.shape(even)
  both = ops.stack([even, odd], axis=axis + 1)
  return ops.reshape(both, s[:axis] + (2 * s[axis],) + s[axis + 1:])


def _fancy(planes, exact: bool):
  """h2v2_fancy_upsample of `[N, P, h, w]`: 3/4 nearer + 1/4 further sample in each direction.

  The exact version is libjpeg's integer one: column sums unrounded, then (sum + 8) >> 4 and
  (sum + 7) >> 4 at alternate output columns. Edges repeat the plane's last sample.
  """
  above, below = _neighbours(planes, 2)
  rows = _interleave(3.0 * planes + above, 3.0 * planes + below, 2)
  left, right = _neighbours(rows, 3)
  even, odd = 3.0 * rows + left, 3.0 * rows + right
  if exact:
    return _interleave(ops.floor((even + 8.0) / 16.0), ops.floor((odd + 7.0) / 16.0), 3)
  return _interleave(even / 16.0, odd / 16.0, 3)


def _box(planes):
  """h2v2_upsample: each sample repeated 2x2."""
  s = ops.shape(planes)
  planes = ops.take(planes, ops.arange(2 * s[2]) // 2, axis=2)
  return ops.take(planes, ops.arange(2 * s[3]) // 2, axis=3)


def _upsample(planes, width):
  """The decoder's chroma upsampling of `[N, P, h, w]` to `[N, P, 2h, 2w]`; `width` is w (an int
  when static, else a scalar tensor: only on TensorFlow).

  jdsample.c uses the triangle filter unless a plane is at most 2 samples wide.
  """
  if isinstance(width, int) and width <= 2:
    return _box(planes)
  fancy = _value(_fancy(_exact(planes), True), _fancy(planes, False))
  if isinstance(width, int):
    return fancy
  return ops.where(width > 2, fancy, _box(planes))


def _to_rgb(y, cb, cr):
  """jdcolor.c's YCbCr -> RGB of `[N, H, W]` planes (Cb, Cr centred on 0), clamped, in [0, 1]."""
  float_rgb = ops.stack([y + 1.402 * cr, y - 0.34414 * cb - 0.71414 * cr, y + 1.772 * cb], -1)
  ey, ecb, ecr = _exact(y), _exact(cb), _exact(cr)
  exact_rgb = ops.stack([
      ey + ops.floor((_fix16(1.402) * ecr + 32768.0) / 65536.0),
      ey + ops.floor((-_fix16(0.34414) * ecb - _fix16(0.71414) * ecr + 32768.0) / 65536.0),
      ey + ops.floor((_fix16(1.772) * ecb + 32768.0) / 65536.0)], -1)
  exact_rgb = ops.cast(ops.clip(exact_rgb, 0.0, 255.0), "float32")
  # A product, not x / 255: Grappler and XLA rewrite that division into this product, so only
  # this gives the same bits eagerly, in a tf.function and under XLA.
  return _value(exact_rgb * (1.0 / 255.0), float_rgb * (1.0 / 255.0))
