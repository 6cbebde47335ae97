"""Probe: refine a model's LR per image, through the JPEG simulation, instead of training.

The encoder knows the codec it will store the LR with, so it could optimise that one LR:
Adam on the LR's pixels, loss `|Gu(F^-1(JPEG_q(Q(LR)))) - y|_1 + lr_weight |Q(LR) - bicubic|_1`
through `fgrn_tf.models.jpeg`, then the real (OpenCV) codec scores the result. It prints, per
image, the Y PSNR of the round trip through the real codec, the LR's RGB PSNR against the
bicubic LR and the encoded bytes, before and after. docs/codecs.md records what it gave (worse
than not refining), which is why the tools do not offer it.

  .venv/bin/python -m studies.lr_refinement --model codec_x2 --images DATASETS/Set5
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

from bench import common


def centre_crop(image: np.ndarray, side: int, multiple: int) -> np.ndarray:
  if not side:
    return image
  top = (image.shape[0] - side) // 2 // multiple * multiple
  left = (image.shape[1] - side) // 2 // multiple * multiple
  return image[top:top + side, left:left + side]


def refine_one(model, hr: np.ndarray, args) -> tuple[tuple, tuple]:
  """((psnr, lr_psnr, bytes) before, the same after) for one uint8 HR image."""
  import tensorflow as tf

  from fgrn_tf.data import codecs
  from fgrn_tf.data.imresize import bicubic_downscale
  from fgrn_tf.metrics.psnr_ssim import psnr, psnr_y
  from fgrn_tf.models import jpeg
  from fgrn_tf.models.fgrn import snap_to_grid
  from fgrn_tf.models.quantize import from_uint8, quantize, to_uint8

  s, codec = model.scale, codecs.Codec("jpeg", args.quality)
  target = from_uint8(tf.constant(hr[None]))
  bicubic = bicubic_downscale(target, s)
  lr = tf.Variable(model.downscale_float(target))
  optimizer = tf.keras.optimizers.Adam(args.rate)
  quality = tf.constant([float(args.quality)])

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      lr8 = quantize(lr)
      x, _ = model._flow_inverse(jpeg.jpeg(lr8, quality, rounding=args.rounding))
      if model.model_config.snap:  # as upscale does, straight-through
        x = x + tf.stop_gradient(snap_to_grid(x) - x)
      loss = (tf.reduce_mean(tf.abs(model.upscaler(x) - target))
              + args.lr_weight * tf.reduce_mean(tf.abs(lr8 - bicubic)))
    optimizer.apply_gradients(zip(tape.gradient(loss, [lr]), [lr], strict=True))
    lr.assign(tf.clip_by_value(lr, 0.0, 1.0))

  def score():
    lr_u8 = to_uint8(lr).numpy()[0]
    decoded, size = codec.roundtrip(lr_u8)
    out = model.upscale(tf.constant(decoded[None])).numpy()[0]
    return psnr_y(hr, out, s), psnr(lr_u8, to_uint8(bicubic).numpy()[0]), size

  before = score()
  for _ in range(args.steps):
    step()
  return before, score()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", required=True,
                      help="a trained model folder or a bundled model's name")
  parser.add_argument("--images", required=True, type=pathlib.Path, help="a folder of HR images")
  parser.add_argument("--crop", type=int, default=128, help="centre crop side (0: whole images)")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--rate", type=float, default=2e-3, help="Adam's rate, on [0, 1] pixels")
  parser.add_argument("--quality", type=int, default=90, help="the JPEG quality refined for")
  parser.add_argument("--lr_weight", type=float, default=0.1)
  parser.add_argument("--rounding", choices=("cubic", "ste"), default="cubic")
  args = parser.parse_args(argv)
  common.tf_env.set_defaults()
  common.announce("lr_refinement")
  from fgrn_tf import workdir
  from fgrn_tf.data import images
  from fgrn_tf.metrics.psnr_ssim import mod_crop
  from fgrn_tf.runtime import resolve

  model = workdir.load_model(resolve.model_spec(args.model))
  rows = []
  for path in images.list_images([args.images]):
    hr = centre_crop(mod_crop(images.read_rgb8(path), model.scale), args.crop, 16)
    start = time.perf_counter()
    before, after = refine_one(model, hr, args)
    rows.append((before, after))
    common.progress("lr_refinement", f"{pathlib.Path(path).name}: "
                    f"{before[0]:.2f} -> {after[0]:.2f} dB, LR {before[1]:.2f} -> "
                    f"{after[1]:.2f} dB, {before[2]} -> {after[2]} bytes "
                    f"({time.perf_counter() - start:.1f} s)")
  mean = lambda i, k: np.mean([r[i][k] for r in rows])  # noqa: E731
  print(f"mean over {len(rows)} images, real JPEG q{args.quality}, rounding {args.rounding}: "
        f"round trip {mean(0, 0):.2f} -> {mean(1, 0):.2f} dB (Y), LR vs bicubic "
        f"{mean(0, 1):.2f} -> {mean(1, 1):.2f} dB (RGB), "
        f"{sum(r[0][2] for r in rows)} -> {sum(r[1][2] for r in rows)} bytes")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
