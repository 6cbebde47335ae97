"""FGRN (Li et al., "Approaching the Limit of Image Rescaling via Flow Guidance", BMVC 2021).

`FGRN` holds Gd, Gu and F, defines its training objective once (`loss_terms`: L_rec for Gd/Gu,
L_guide for F on a stopped-gradient x), measures its test-time round trip (`test_roundtrip`,
what training validates with) and rescales uint8 images with `downscale` and `upscale`. All of
it is `keras.ops`: the same model trains on TensorFlow and on JAX. How a step differentiates
and applies the objective is each backend's (`fgrn_tf.models.steps`).
"""

from __future__ import annotations

import keras
from keras import ops

from fgrn_tf.config import ModelConfig, Objective
from fgrn_tf.data.imresize import bicubic_downscale
from fgrn_tf.models import jpeg, losses
from fgrn_tf.models import precision as precision_lib
from fgrn_tf.models.downscaler import Downscaler
from fgrn_tf.models.flow import FlowGuidance
from fgrn_tf.models.image_batch import check_shape, not_multiple
from fgrn_tf.models.native import assert_sides_divisible, shape_list, stateless_uniform
from fgrn_tf.models.quantize import clip_quantize, from_uint8, quantize, round_half_up, to_uint8
from fgrn_tf.models.steps import TrainStep
from fgrn_tf.models.upscaler import Upscaler

VALIDATION_QUALITY = 90  # the JPEG quality of a codec-aware model's validation
# The base of the codec draws during training; the step is the other half of their seed.
CODEC_SEED = 20211122
TRAIN_METRICS = ("loss", "rec_loss", "guide_loss", "guide_l1", "logdet", "grad_norm")


def check_image_batch(images, name: str, scale: int | None = None, dtype: str = "uint8"):
  """Raises ValueError unless `images` is a `[N, H, W, 3]` batch of `dtype`
  (`fgrn_tf.models.image_batch`, the check every backend shares).

  With `scale`, H and W must be multiples of it. Static shapes are checked in Python; unknown
  H/W (inside a `tf.function` with a dynamic signature) are checked by a graph assertion that
  carries the same message.
  """
  images = ops.convert_to_tensor(images)
  shape = shape_list(images)
  check_shape(shape, keras.backend.standardize_dtype(images.dtype), name, scale, expected=dtype)
  if scale is None or (shape[1] is not None and shape[2] is not None):
    return images
  return assert_sides_divisible(images, scale, not_multiple(name, scale))


def snap_to_grid(x):
  """Back onto the 8-bit grid x lived on (x = Q(Gd(y)) was quantized before F)."""
  return round_half_up(ops.clip(x, 0.0, 1.0) * 255.0) / 255.0


def psnr01(a, b):
  """PSNR in dB of float images in [0, 1], per example. Returns `[N]`."""
  mse = ops.mean(ops.square(a - b), axis=(1, 2, 3))
  return 10.0 * ops.log(1.0 / ops.maximum(mse, 1e-10)) / ops.log(10.0)


@keras.saving.register_keras_serializable(package="fgrn_tf")
class FGRN(TrainStep, keras.Model):
  """The FGRN rescaling network.

  Training data: HR batches alone, `[N, H, W, 3]` float in [0, 1]; the guidance target (the
  MATLAB-bicubic LR, `guidance_target`) is computed from them inside `train_step`, on every
  strategy the same way (docs/training.md, "One data path").
  """

  def __init__(self, config: ModelConfig | dict | None = None, precision: str = "float32",
               objective: Objective | dict | None = None, **kwargs):
    """`precision`: the dtype policy of Gd's and Gu's convolutions (`fgrn_tf.models.precision`); F,
    the quantizers and the losses are float32 under every one. `objective`: what `loss_terms`
    minimises (training only; also tells a codec-aware model, which validates through JPEG)."""
    super().__init__(**kwargs)
    if config is None:
      config = ModelConfig()
    if isinstance(config, dict):
      legacy = config  # a .keras file from before the objective had its own part
      config = ModelConfig.from_dict(config)
      objective = objective if objective is not None else Objective.of(None, legacy)
    if isinstance(objective, dict):
      objective = Objective.from_dict(objective)
    self.model_config = config
    self.objective = objective or Objective()
    self.precision = precision
    c = config
    mixed = precision_lib.policy(precision)
    self.downscaler = Downscaler(c.scale, c.width, c.down_blocks, name="Gd", dtype=mixed)
    self.upscaler = Upscaler(c.scale, c.width, c.up_blocks, name="Gu", dtype=mixed)
    self.flow = (FlowGuidance(c.flow_cells, 3, c.flow_growth, c.flow_clamp, name="F",
                              dtype="float32")
                 if c.uses_flow else None)
    self.trackers = {name: keras.metrics.Mean(name=name) for name in TRAIN_METRICS}
    self.build((None, None, None, 3))

  @property
  def scale(self) -> int:
    return self.model_config.scale

  def build(self, input_shape):
    if self.built:
      return
    self.downscaler.build(input_shape)
    self.upscaler.build(input_shape)
    if self.flow is not None:
      self.flow.build(input_shape)
    self.built = True

  def get_config(self):
    return {"config": self.model_config.to_dict(), "precision": self.precision,
            "objective": self.objective.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  # ---- the math -----------------------------------------------------------------------------

  def _flow_forward(self, x):
    if self.flow is None:
      return x, ops.zeros(ops.shape(x)[:1], x.dtype)
    return self.flow.forward(x)

  def _flow_inverse(self, lr):
    if self.flow is None:
      return lr, ops.zeros(ops.shape(lr)[:1], lr.dtype)
    return self.flow.inverse(lr)

  def call(self, hr, training=False):
    """The training-time forward pass.

    Args:
      hr: `[N, H, W, 3]` float in [0, 1], H and W multiples of the scale.

    Returns:
      dict: `x` = Q(Gd(hr)) `[N, H/s, W/s, 3]`; `sr` `[N, H, W, 3]` (unclamped), Gu(x), or for
      a codec-aware model Gu(F^-1(JPEG(Q(F(x))))) on the examples drawn for the codec;
      `lr` = F(stop_gradient(x)) (not quantized) and `logdet` `[N]` of F at x, for L_guide;
      with `lr_weight`, `lr8` = Q(F(x)), whose gradient reaches Gd through F.
    """
    # Clip before the straight-through rounding: the forward pass is the same (quantize clamps),
    # but values outside [0, 1] get no gradient. With the identity gradient there, nothing pulled
    # Gd's raw output back into range under "flow"/"none" guidance; it drifted (27% out of range,
    # min -284 after 100 steps of the quick preset) until training diverged (grad norm 5e5).
    x = clip_quantize(self.downscaler(hr))
    lr, logdet = self._flow_forward(ops.stop_gradient(x))
    out = {"x": x, "lr": lr, "logdet": logdet}
    c = self.objective
    through_codec = training and c.trains_through_codec
    if not (through_codec or c.lr_weight):
      out["sr"] = self.upscaler(x)
      return out
    lr8 = clip_quantize(self._flow_forward(x)[0])  # the stored LR, differentiable in Gd and F
    if c.lr_weight:
      out["lr8"] = lr8
    if not through_codec:
      out["sr"] = self.upscaler(x)
      return out
    received = self._through_codec(lr8)
    x_hat, _ = self._flow_inverse(received)
    if c.codec_gradient == "decoder":
      x_hat = ops.stop_gradient(x_hat)  # Gu alone learns the decoded LR
    out["sr"] = self.upscaler(x_hat)
    return out

  def _through_codec(self, lr8):
    """The LR as a receiver gets it: JPEG at a quality drawn per example from the config's
    range, for a `codec_prob` share of the batch; the others keep the 8-bit LR."""
    c = self.objective
    n = ops.shape(lr8)[0]
    # Drawn from the training step (stateless): the same draws in graph and eager mode, and a
    # resumed run draws what the uninterrupted one would have (its step comes back with Adam's).
    optimizer = getattr(self, "optimizer", None)  # none before compile (a gradient check)
    step = ops.convert_to_tensor(optimizer.iterations) if optimizer is not None else 0
    draws = stateless_uniform([2, n], (CODEC_SEED, step))
    quality = c.codec_min_quality + draws[0] * (c.codec_max_quality + 1.0 - c.codec_min_quality)
    coded = jpeg.jpeg(lr8, ops.floor(quality), rounding=c.codec_rounding)
    if c.codec_prob >= 1.0:
      return coded
    chosen = draws[1] < c.codec_prob
    return ops.where(chosen[:, None, None, None], coded, lr8)

  def downscale_float(self, hr):
    """Test-time downscale Q(F(Q(Gd(y)))): float HR in [0, 1] -> LR on the 8-bit grid."""
    lr, _ = self._flow_forward(quantize(self.downscaler(hr)))
    return quantize(lr)

  def upscale_float(self, lr):
    """Test-time upscale Gu(F^-1(lr)): float LR in [0, 1] -> HR float (unclamped)."""
    x, _ = self._flow_inverse(lr)
    if self.model_config.snap and self.flow is not None:
      x = snap_to_grid(x)
    return self.upscaler(x)

  def downscale(self, hr):
    """uint8 HR `[N, H, W, 3]` (H, W multiples of the scale) -> uint8 LR `[N, H/s, W/s, 3]`."""
    hr = check_image_batch(hr, "downscale input", self.scale)
    return to_uint8(self.downscale_float(from_uint8(hr)))

  def upscale(self, lr):
    """uint8 LR `[N, h, w, 3]` -> uint8 HR `[N, h*s, w*s, 3]`."""
    lr = check_image_batch(lr, "upscale input")
    return to_uint8(self.upscale_float(from_uint8(lr)))

  # ---- training -----------------------------------------------------------------------------

  def guidance_target(self, hr):
    """y_bic: the MATLAB bicubic of `hr` `[N, H/s, W/s, 3]` (unclipped: may overshoot [0, 1])."""
    return bicubic_downscale(hr, self.scale)

  def test_roundtrip(self, hr, y_bic=None):
    """The test-time round trip of float HR and how good it is (training's validation).

    Args:
      hr: `[N, H, W, 3]` float in [0, 1], H and W multiples of the scale.
      y_bic: `guidance_target(hr)`, when the caller has it already.

    Returns:
      dict: `lr` (on the 8-bit grid), `sr` (quantized, as an 8-bit image would be),
      `psnr` of sr against hr and `lr_psnr` of lr against y_bic (RGB, dB, `[N]`); for a
      codec-aware model also `psnr_jpeg`, with the LR through JPEG at VALIDATION_QUALITY.
    """
    y_bic = self.guidance_target(hr) if y_bic is None else y_bic
    lr = self.downscale_float(hr)
    sr = quantize(self.upscale_float(lr))
    out = {"lr": lr, "sr": sr, "psnr": psnr01(hr, sr), "lr_psnr": psnr01(y_bic, lr)}
    if self.objective.trains_through_codec:
      # At the quality users pick most, through the codec the evaluation reports (OpenCV's
      # libjpeg-turbo: the simulation's exact forward pass), so the best weights are picked on
      # the figure fgrn-eval prints: a codec-aware model is chosen by how it survives the codec.
      # (TF's own adjust_jpeg_quality decodes other pixels, up to 5 levels: docs/codecs.md.)
      coded = jpeg.jpeg(lr, VALIDATION_QUALITY, rounding="ste")
      out["psnr_jpeg"] = psnr01(hr, quantize(self.upscale_float(coded)))
    return out

  def _loss_terms(self, hr, y_bic, out):
    """Per-example terms `[N]`: rec, guide (the full L_guide or DU_bic's L1, or zero), guide_l1."""
    rec = losses.reconstruction(hr, out["sr"])
    mode = self.model_config.guidance
    if mode == "flow":
      guide_l1 = losses.guidance_l1(out["lr"], y_bic)
      guide = losses.guidance(out["lr"], y_bic, out["logdet"], self.objective.gamma)
    elif mode == "bicubic":
      # DU_bic: x itself is pulled to the bicubic LR, and this gradient does reach Gd.
      guide_l1 = guide = losses.guidance_l1(out["x"], y_bic)
    else:
      guide_l1 = losses.guidance_l1(out["x"], y_bic)
      guide = ops.zeros_like(rec)
    if "lr8" in out:  # the picture knob: pulls the stored LR itself to bicubic, through Gd
      guide = guide + self.objective.lr_weight * losses.guidance_l1(out["lr8"], y_bic)
    return rec, guide, guide_l1

  def loss_terms(self, hr) -> dict:
    """The training objective on an HR batch, per example: the one definition every backend's
    step differentiates (`fgrn_tf.models.steps`).

    Args:
      hr: `[N, H, W, 3]`, float in [0, 1] or uint8.

    Returns:
      dict of `[N]`: `loss` (what is minimised: rec + guide), `rec_loss`, `guide_loss`,
      `guide_l1`, `logdet`.
    """
    if keras.backend.standardize_dtype(hr.dtype) == "uint8":
      hr = from_uint8(hr)
    hr = ops.cast(hr, "float32")
    y_bic = self.guidance_target(hr)
    out = self(hr, training=True)
    rec, guide, guide_l1 = self._loss_terms(hr, y_bic, out)
    return {"loss": rec + guide, "rec_loss": rec, "guide_loss": guide, "guide_l1": guide_l1,
            "logdet": out["logdet"]}

  @property
  def metrics(self):
    return list(self.trackers.values())
