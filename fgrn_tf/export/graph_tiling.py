"""Window-by-window resizing inside a TensorFlow graph: the served bytes signatures' tiling.

The same windows as the command-line tool's `fgrn_tf.rescale.tiling.spans`, computed from the
image's size when the graph runs, so a served image gives the CLI's tiled pixels, seams
included. Windows run one after another (`parallel_iterations=1`): a request holds one window
of network activations at a time, whatever the image's size.
"""

from __future__ import annotations

from collections.abc import Callable

from fgrn_tf.rescale.tiling import spans


def check_window(window: int, margin: int) -> None:
  """Raises ValueError, as `spans` does, for a window the margin leaves no room in."""
  spans(window + 1, window, margin)


def graph_spans(n, window: int, margin: int):
  """`spans(n, window, margin)` as int32 tensors, for a size `n` known when the graph runs.

  Args:
    n: int32 scalar tensor, the length in grid cells.
    window, margin: grid cells (checked by `check_window` when the graph is built).

  Returns:
    (core starts, core ends, window starts), int32 `[K]` each; every window has
    `min(n, window)` cells.
  """
  import tensorflow as tf

  check_window(window, margin)
  step = window - 2 * margin

  def whole():
    return tf.zeros([1], tf.int32), tf.reshape(n, [1]), tf.zeros([1], tf.int32)

  def tiled():
    # spans' loop in closed form: core 0 is [0, window - margin), core k >= 1 starts at
    # window - margin + (k - 1) * step, and each window is pushed back inside the image.
    count = 1 + (n - (window - margin) + step - 1) // step
    k = tf.range(count)
    first = window - margin
    starts = tf.where(k == 0, 0, first + (k - 1) * step)
    ends = tf.minimum(n, tf.where(k == 0, first, starts + step))
    return starts, ends, tf.minimum(tf.maximum(starts - margin, 0), n - window)

  return tf.cond(n <= window, whole, tiled)


def apply_tiled(fn: Callable, image, in_unit: int, out_unit: int, window: int, margin: int,
                channels: int, dtype):
  """`fgrn_tf.rescale.tiling.apply_tiled` as graph ops, on one image.

  Args:
    fn: maps `[h*in_unit, w*in_unit, C]` to `[h*out_unit, w*out_unit, channels]` of `dtype`,
      each output pixel depending on input within `margin` grid cells.
    image: `[gh*in_unit, gw*in_unit, C]` tensor.
    in_unit, out_unit: pixels per grid cell in input and output.
    window: largest window in grid cells.
    margin: context kept on each side of a window's core, in grid cells.
    channels, dtype: of `fn`'s output.

  Returns:
    `[gh*out_unit, gw*out_unit, channels]`, what `apply_tiled` gives on the same image.
  """
  import tensorflow as tf

  i, o = in_unit, out_unit
  shape = tf.shape(image)
  rows = graph_spans(shape[0] // i, window, margin)
  cols = graph_spans(shape[1] // i, window, margin)
  win_h, win_w = tf.minimum(shape[0] // i, window), tf.minimum(shape[1] // i, window)
  n_rows, n_cols = tf.size(rows[0]), tf.size(cols[0])

  def row(r, strips):
    a, b, wa = rows[0][r], rows[1][r], rows[2][r]

    def col(c, pieces):
      cs, ce, wc = cols[0][c], cols[1][c], cols[2][c]
      piece = fn(image[wa * i:(wa + win_h) * i, wc * i:(wc + win_w) * i])
      core = piece[(a - wa) * o:(b - wa) * o, (cs - wc) * o:(ce - wc) * o]
      # TensorArray.concat joins on the first axis: cores are stored transposed to be joined
      # side by side.
      return c + 1, pieces.write(c, tf.transpose(core, [1, 0, 2]))

    pieces = tf.TensorArray(dtype, size=n_cols, infer_shape=False,
                            element_shape=tf.TensorShape([None, None, channels]))
    _, pieces = tf.while_loop(lambda c, _: c < n_cols, col, (0, pieces), parallel_iterations=1)
    return r + 1, strips.write(r, tf.transpose(pieces.concat(), [1, 0, 2]))

  strips = tf.TensorArray(dtype, size=n_rows, infer_shape=False,
                          element_shape=tf.TensorShape([None, None, channels]))
  _, strips = tf.while_loop(lambda r, _: r < n_rows, row, (0, strips), parallel_iterations=1)
  return strips.concat()
