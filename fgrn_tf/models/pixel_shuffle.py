"""Space-to-depth and depth-to-space (pixel shuffle) on every Keras backend, in TF's channel order.

`keras.ops` has neither. On TensorFlow the native ops are used, so an exported SavedModel or
.tflite keeps its SPACE_TO_DEPTH / DEPTH_TO_SPACE builtins (TFLite's GPU delegate runs those, and
not the 6-D transposes of the generic form). Elsewhere (JAX) a reshape and a transpose give the
same values: output `[n, h * s + i, w * s + j, c]` = input `[n, h, w, (i * s + j) * C + c]`.
"""

from __future__ import annotations

from keras import ops

from fgrn_tf.models.native import tensorflow


def space_to_depth(x, scale: int):
  """`[N, H, W, C]` -> `[N, H/s, W/s, C*s*s]` (H, W multiples of s)."""
  tf = tensorflow()
  if tf is not None:
    return tf.nn.space_to_depth(x, scale)
  n, h, w, c = ops.shape(x)
  x = ops.reshape(x, (n, h // scale, scale, w // scale, scale, c))
  x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
  return ops.reshape(x, (n, h // scale, w // scale, scale * scale * c))


def depth_to_space(x, scale: int):
  """`[N, h, w, C*s*s]` -> `[N, h*s, w*s, C]`, the inverse of `space_to_depth`."""
  tf = tensorflow()
  if tf is not None:
    return tf.nn.depth_to_space(x, scale)
  n, h, w, c = ops.shape(x)
  out = c // (scale * scale)
  x = ops.reshape(x, (n, h, w, scale, scale, out))
  x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
  return ops.reshape(x, (n, h * scale, w * scale, out))
