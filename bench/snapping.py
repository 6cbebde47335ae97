"""Does snapping F^-1(lr) back onto the 8-bit grid help? (FGRN issue: the snapping default.)

x = Q(Gd(y)) lies on the 1/255 grid; the stored LR is Q(F(x)). Upscaling inverts F on the
quantized LR, so F^-1(lr) is near x but not on the grid. This prints, for a trained model and a
set of images, how often rounding F^-1(lr) recovers x exactly, and the HR PSNR (RGB, 0..255)
with and without snapping.

  python -m bench.snapping --model runs/quick --images "$FGRN_DATA_ROOT/Set5"
"""

from __future__ import annotations

import pathlib
import sys

from bench import common
from fgrn_tf import tf_env

tf_env.set_defaults()


def main(argv=None):
  parser = common.script_parser(__doc__)
  parser.add_argument("--model", required=True, help="training workdir or .keras file")
  parser.add_argument("--images", required=True, help="folder of HR images")
  args = parser.parse_args(argv)
  common.announce("snapping")

  import numpy as np
  import tensorflow as tf

  from fgrn_tf.data.images import list_images, read_rgb8
  from fgrn_tf.models.fgrn import snap_to_grid
  from fgrn_tf.models.quantize import quantize
  from fgrn_tf.workdir import load_model

  model = load_model(args.model)
  if model.flow is None:
    sys.exit(f"{args.model}: guidance {model.model_config.guidance!r} has no flow to invert")
  s = model.scale
  rows, exact, total = [], 0, 0
  for path in list_images(args.images):
    img = read_rgb8(path)
    img = img[:img.shape[0] - img.shape[0] % s, :img.shape[1] - img.shape[1] % s]
    hr = tf.constant(img[None].astype(np.float32) / 255)
    x = quantize(model.downscaler(hr))
    lr = quantize(model.flow.forward(x)[0])
    x_hat = model.flow.inverse(lr)[0]
    same = tf.round(snap_to_grid(x_hat) * 255) == tf.round(x * 255)
    exact += int(tf.reduce_sum(tf.cast(same, tf.int64)))
    total += int(tf.size(same))
    psnrs = []
    for candidate in (x_hat, snap_to_grid(x_hat), x):
      sr = tf.round(tf.clip_by_value(model.upscaler(candidate), 0, 1) * 255)
      mse = float(tf.reduce_mean(tf.square(sr - hr * 255)))
      psnrs.append(10 * np.log10(255**2 / max(mse, 1e-10)))
    rows.append((pathlib.Path(path).name, float(tf.reduce_mean(tf.cast(same, tf.float32))),
                 *psnrs))
  print(f"{'image':24s} {'x recovered':>12s} {'PSNR raw':>9s} {'snapped':>9s} {'true x':>9s}")
  for name, frac, raw, snapped, true in rows:
    print(f"{name:24s} {100 * frac:11.2f}% {raw:9.3f} {snapped:9.3f} {true:9.3f}")
  means = np.mean([r[2:] for r in rows], axis=0)
  print(f"{'all':24s} {100 * exact / total:11.2f}% {means[0]:9.3f} {means[1]:9.3f} "
        f"{means[2]:9.3f}")


if __name__ == "__main__":
  main()
