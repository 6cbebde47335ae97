"""8-bit straight-through quantization (as in IRN, used by FGRN for x and for the LR image)."""

from __future__ import annotations

from keras import ops


def round_half_up(v):
  """Rounds to the nearest integer, halves up: FLOOR(v + 0.5).

  Not a round op (halves to even): TFLite lowers it to ROUND, which TFLite's GPU delegate has no
  kernel for, so every rounding would split the graph between GPU and CPU. The two differ only
  at exact halves.
  """
  return ops.floor(v + 0.5)


def quantize(x):
  """Clamps to [0, 1] and rounds to multiples of 1/255, with a straight-through gradient.

  Args:
    x: float tensor of any shape, nominally in [0, 1].

  Returns:
    A tensor of the same shape and dtype whose values lie on the 8-bit grid. The gradient is
    the identity (IRN's `Quant.backward`), so Gd learns through the rounding. FGRN's training
    pass clamps Gd's output first (`clip_quantize`), so there values outside [0, 1] get no
    gradient; every other use (the LR image, test time) needs none.
  """
  q = round_half_up(ops.clip(x, 0.0, 1.0) * 255.0) / 255.0
  return x + ops.stop_gradient(q - x)


def clip_quantize(x):
  """`quantize` after clamping to [0, 1]: x = Q(Gd(y)) in FGRN's training pass.

  The same values as `quantize`; the gradient is the identity inside [0, 1] and zero outside
  (`FGRN.call` says why: with the identity outside too, training diverged).
  """
  return quantize(ops.clip(x, 0.0, 1.0))


def to_uint8(x):
  """Float image in [0, 1] -> uint8, rounding to nearest and saturating."""
  # Not a saturating cast: TF lowers it to ClipByValue, which is no TFLite builtin (the export
  # would need Flex); a clip of a float with scalar bounds lowers to MINIMUM + RELU.
  return ops.cast(ops.clip(round_half_up(x * 255.0), 0.0, 255.0), "uint8")


def from_uint8(x):
  """uint8 image -> float32 in [0, 1]."""
  return ops.cast(x, "float32") / 255.0
