"""Typed, frozen configurations for FGRN (Li et al., BMVC 2021) and its training presets.

Numbers that define the method live here and travel with a training workdir as JSON, so that
evaluation, export and the command-line tool need only the workdir. The fields are also the
training tool's flags (`override_fields`): each class's docstring is their help text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Callable
from typing import Literal

from fgrn_tf.errors import FGRNError

Guidance = Literal["flow", "bicubic", "none"]
GUIDANCE_MODES = typing.get_args(Guidance)
CodecGradient = Literal["end_to_end", "decoder"]
CODEC_GRADIENTS = typing.get_args(CodecGradient)
CodecRounding = Literal["cubic", "ste"]
Precision = Literal["float32", "mixed_bfloat16", "mixed_float16"]
PRECISIONS = typing.get_args(Precision)
# The Keras backends FGRN trains on (it runs inference on any).
BACKENDS = ("tensorflow", "jax")


class ConfigError(FGRNError, ValueError):
  """A field out of range or not a field at all (one line naming it)."""


class _Fields:
  """What ModelConfig and TrainConfig share: copies with changes, and strict dicts."""

  def replace(self, **changes):
    _check_names(type(self), changes)
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict):
    """The config from `to_dict`'s output; ConfigError (a ValueError) for unknown fields."""
    _check_names(cls, d)
    return cls(**d)


def _check_names(cls, names) -> None:
  unknown = set(names) - {f.name for f in dataclasses.fields(cls)}
  if unknown:
    raise ConfigError(f"unknown {cls.__name__} fields {sorted(unknown)}")


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Fields):
  """The shape of one FGRN network: what its weights are and how it rescales.

  Attributes:
    scale: integer rescaling factor s (2 or 4 in the paper; any s >= 2 works).
    width: channels of the ResBlocks in Gd and Gu.
    down_blocks: ResBlocks in the downscaler Gd.
    up_blocks: ResBlocks in the upscaler Gu.
    flow_cells: K, invertible coupling cells in the flow guidance module F.
    flow_growth: growth channels of the dense blocks a, b, p inside each cell.
    flow_clamp: bound on the log-scale, `clamp * tanh(b / 2)` (= IRN's `2*sigmoid-1` form).
    guidance: "flow" (FGRN), "bicubic" (DU_bic, L1 of x to bicubic LR, no F) or "none"
      (DU_none). The two ablations of the paper's Table 3.
    snap: snap F^-1(lr) back onto the 1/255 grid before Gu at test time (x was quantized).
  """

  scale: int = 2
  width: int = 64
  down_blocks: int = 5
  up_blocks: int = 5
  flow_cells: int = 3
  flow_growth: int = 32
  flow_clamp: float = 1.0
  guidance: Guidance = "flow"
  snap: bool = True

  def __post_init__(self):
    if not isinstance(self.scale, int) or self.scale < 2:
      raise ConfigError(f"scale must be an integer >= 2, got {self.scale!r}")
    if self.guidance not in GUIDANCE_MODES:
      raise ConfigError(f"guidance must be one of {GUIDANCE_MODES}, got {self.guidance!r}")
    for name in ("width", "down_blocks", "up_blocks", "flow_growth"):
      if getattr(self, name) < 1:
        raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
    if self.flow_cells < 0:
      raise ConfigError(f"flow_cells must be >= 0, got {self.flow_cells!r}")

  @classmethod
  def from_dict(cls, d: dict):
    """As `_Fields.from_dict`; configs written before the objective moved out of the network
    (fgrn-tf 0.2) still carry its fields here, and they are dropped."""
    return super().from_dict({k: v for k, v in d.items() if k not in OBJECTIVE_FIELDS})

  @property
  def uses_flow(self) -> bool:
    return self.guidance == "flow" and self.flow_cells > 0


@dataclasses.dataclass(frozen=True)
class Objective(_Fields):
  """What training minimises: the loss weights and the codec the LR goes through. Not part of
  the network: a resumed run may change it (the change is printed and recorded).

  Attributes:
    gamma: weight of the log-determinant in the guidance loss (paper eq. 9: 1e-3).
    codec_min_quality: lowest JPEG quality the LR goes through in training (0: no codec; the
      paper's FGRN). Each example draws its quality uniformly from min..max, and the
      reconstruction is trained on the LR as the differentiable JPEG returns it
      (`fgrn_tf.models.jpeg`), so the model learns an LR that survives JPEG.
    codec_max_quality: highest JPEG quality of that range (>= codec_min_quality, <= 100).
    codec_prob: fraction of the training examples whose LR goes through the codec; the others
      are reconstructed from the 8-bit LR itself, which keeps the lossless round trip trained.
    codec_gradient: "end_to_end" (the reconstruction's gradient reaches Gd and F through the
      codec) or "decoder" (only Gu learns from the decoded LR; Gd and F stay as trained).
    codec_rounding: how the simulated JPEG rounds its DCT coefficients in the backward pass:
      "cubic" (a smooth rounding, forward and backward) or "ste" (exact forward, identity
      gradient). In a short probe (docs/codecs.md) "ste" wrecked end-to-end training.
    lr_weight: weight of the L1 distance of the 8-bit LR Q(F(x)) to the bicubic LR, a term
      whose gradient reaches Gd through F (L_guide trains F alone): the knob that keeps the
      LR a picture people can look at, against the detail Gd packs into it (0: off).
  """

  gamma: float = 1e-3
  codec_min_quality: int = 0
  codec_max_quality: int = 0
  codec_prob: float = 1.0
  codec_gradient: CodecGradient = "end_to_end"
  codec_rounding: CodecRounding = "cubic"
  lr_weight: float = 0.0

  def __post_init__(self):
    lo, hi = self.codec_min_quality, self.codec_max_quality
    if (lo, hi) != (0, 0) and not 1 <= lo <= hi <= 100:
      raise ConfigError(f"codec qualities must satisfy 1 <= codec_min_quality <= "
                        f"codec_max_quality <= 100 (or both 0: no codec), got {lo}..{hi}")
    if not 0.0 <= self.codec_prob <= 1.0:
      raise ConfigError(f"codec_prob must be in [0, 1], got {self.codec_prob!r}")
    if self.codec_gradient not in CODEC_GRADIENTS:
      raise ConfigError(f"codec_gradient must be one of {CODEC_GRADIENTS}, got "
                        f"{self.codec_gradient!r}")
    if self.lr_weight < 0:
      raise ConfigError(f"lr_weight must be >= 0, got {self.lr_weight!r}")

  @classmethod
  def of(cls, d: dict | None, legacy_model: dict | None = None) -> Objective:
    """The objective a config file records: its "objective" part `d`, or for a file written
    before it had one, the objective's fields in its "model" part (absent ones default)."""
    if d is not None:
      return cls.from_dict(d)
    return cls(**{k: v for k, v in (legacy_model or {}).items() if k in OBJECTIVE_FIELDS})

  @property
  def trains_through_codec(self) -> bool:
    return self.codec_max_quality > 0 and self.codec_prob > 0


OBJECTIVE_FIELDS = tuple(f.name for f in dataclasses.fields(Objective))


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Fields):
  """How a network is trained.

  Attributes:
    batch_size: global batch (split over replicas).
    patch_size: HR patch side; a multiple of the scale.
    steps: total optimizer steps.
    learning_rate: Adam's initial rate.
    lr_halving_steps: the rate is halved every this many steps (paper: 2e5).
    seed: seed for weights, patch sampling and augmentation.
    steps_per_epoch: steps between backups, validation and logs (Keras "epochs").
    val_images: images held out of the training folders for validation when no validation
      folder is given.
    data_dirs: training image folders (searched recursively); empty = the colour photos
      scikit-image ships (`fgrn_tf.data.defaults`).
    val_dir: a validation image folder; empty = hold `val_images` out of the training images.
    val_crop: validation images are centre-cropped to at most this side (0 = whole images),
      which keeps validation cheap on big images.
    init_from: weights a new run starts from (fine-tuning): a training workdir or a shipped
      model folder, or "shipped" for the shipped model of the run's scale; empty = random
      weights. Only read at step 0; a resumed run continues from its own backup.
    precision: float32, mixed_bfloat16 (CPUs with AVX512-BF16 or AMX, recent GPUs) or
      mixed_float16 (NVIDIA GPUs, with dynamic loss scaling): the dtype policy of Gd's and
      Gu's convolutions; F, the quantizers and the losses stay float32 (`fgrn_tf.models.precision`).
  """

  batch_size: int = 36
  patch_size: int = 192
  steps: int = 500_000
  learning_rate: float = 3e-4
  lr_halving_steps: int = 200_000
  seed: int = 0
  steps_per_epoch: int = 1000
  val_images: int = 5
  data_dirs: tuple[str, ...] = ()
  val_dir: str = ""
  val_crop: int = 0
  init_from: str = ""
  precision: Precision = "float32"

  def __post_init__(self):
    # JSON brings lists back; keep the field hashable and comparable.
    object.__setattr__(self, "data_dirs", tuple(self.data_dirs))
    if self.precision not in PRECISIONS:
      raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


# Fields that hold paths: made absolute when set from a command line, so that a workdir's
# config.json means the same folders whichever folder a later run starts in.
_PATH_FIELDS = ("data_dirs", "val_dir")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A network, the recipe that trains it, and the objective that recipe minimises."""

  model: ModelConfig
  train: TrainConfig
  objective: Objective = Objective()

  def replace(self, model: dict | None = None, train: dict | None = None,
              objective: dict | None = None) -> Experiment:
    """A copy with some fields of the network (`model`), the recipe (`train`) and the
    objective changed.

    Raises ConfigError for a name that is no field, or a value out of range.
    """
    return Experiment(self.model.replace(**(model or {})), self.train.replace(**(train or {})),
                      self.objective.replace(**(objective or {})))

  def with_overrides(self, model: dict | None = None, train: dict | None = None,
                     objective: dict | None = None) -> Experiment:
    """This experiment with the values a user gave on a command line (a preset + flags).

    Args:
      model, train, objective: field name -> value; None means "not given" (the preset's
        value stays). Paths (`data_dirs`, `val_dir`) are taken relative to the current folder
        and stored absolute; empty entries of `data_dirs` are dropped.

    Raises ConfigError for a name that is no field, or a value out of range.
    """
    model, train, objective = ({k: v for k, v in (part or {}).items() if v is not None}
                               for part in (model, train, objective))
    if "data_dirs" in train:
      train["data_dirs"] = tuple(os.path.abspath(d) for d in train["data_dirs"] if d)
    if train.get("val_dir"):
      train["val_dir"] = os.path.abspath(train["val_dir"])
    if train.get("init_from") and train["init_from"] != "shipped":
      train["init_from"] = os.path.abspath(train["init_from"])
    return self.replace(model=model, train=train, objective=objective)

  def to_json(self) -> str:
    return json.dumps({"model": self.model.to_dict(), "train": self.train.to_dict(),
                       "objective": self.objective.to_dict()}, indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> Experiment:
    """Reads `to_json`'s text (also a file from before the objective had its own part);
    ConfigError for unknown fields, KeyError for a missing part."""
    d = json.loads(text)
    return cls(model=ModelConfig.from_dict(d["model"]), train=TrainConfig.from_dict(d["train"]),
               objective=Objective.of(d.get("objective"), d["model"]))


# ---- presets -----------------------------------------------------------------------------------

def x2() -> Experiment:
  """The paper's x2 model and recipe: 1.33M parameters (here 1,323,008 = -0.5%).

  Paper (DIV2K+Flickr2K, 5e5 steps): Set5 44.15 dB / 0.9902, Set14 42.28 / 0.9840.
  """
  return Experiment(ModelConfig(scale=2, width=64, down_blocks=5, up_blocks=5, flow_cells=3),
                    TrainConfig())


def x4() -> Experiment:
  """The paper's x4 model and recipe: 3.35M parameters (here 3,358,788 = +0.3%).

  Paper (DIV2K+Flickr2K, 5e5 steps): Set5 36.97 dB / 0.9505, Set14 33.77 / 0.9168.
  """
  return x2().replace(model={"scale": 4, "width": 96, "down_blocks": 8, "up_blocks": 8})


# The recipe of the CPU presets: a few CPU-hours, validation every 250 steps on crops of 256.
_CPU_RECIPE = {"batch_size": 8, "patch_size": 96, "steps": 5_000, "lr_halving_steps": 2_000,
               "steps_per_epoch": 250, "val_crop": 256}


def cpu_x2() -> Experiment:
  """The paper's x2 network with a recipe for a 2-core CPU and a few CPU-hours.

  Batch 8 of 96x96 HR patches (2.4 s a step on an idle 2-core CPU), Adam 3e-4 halved every 2k
  steps over 5k steps, ~3.3 hours (the paper halves at 2e5 and 4e5 of 5e5; here at 2k and
  4k); a backup and validation every 250 steps on 5 held-out images (centre crops of 256).
  """
  return x2().replace(train=_CPU_RECIPE)


def cpu_x4() -> Experiment:
  """The paper's x4 network with a recipe for a 2-core CPU and a few CPU-hours.

  Batch 8 of 128x128 HR patches, Adam 3e-4 halved every 2k steps over 5k steps (as cpu_x2);
  a backup and validation every 250 steps on 5 held-out images (centre crops of 256).
  """
  return x4().replace(train={**_CPU_RECIPE, "patch_size": 128})


# Codec-aware fine-tuning (issue 16): JPEG q75..95 on half of each batch, the LR pulled to the
# bicubic one through Gd, from the shipped model at a third of its learning rate. lr_weight 0.1
# is the first point of the measured curve whose LR is no further from bicubic than the
# shipped model's (docs/codecs.md, "Codec-aware training").
_CODEC_OBJECTIVE = {"codec_min_quality": 75, "codec_max_quality": 95, "codec_prob": 0.5,
                    "lr_weight": 0.1}
_CODEC_RECIPE = {"init_from": "shipped", "learning_rate": 1e-4, "steps": 1_000,
                 "lr_halving_steps": 600, "steps_per_epoch": 200}


def codec_x2() -> Experiment:
  """cpu_x2's network fine-tuned to survive JPEG: from the shipped x2 model, its LR through the
  differentiable JPEG at q75..95 on half the examples, lr_weight 0.1; 1k steps of cpu_x2's
  batches (~45 minutes on a 2-core CPU with AMX), Adam 1e-4 halved at 600; the best weights
  by the validation round trip through real JPEG q90."""
  return cpu_x2().replace(train=_CODEC_RECIPE, objective=_CODEC_OBJECTIVE)


def codec_x4() -> Experiment:
  """cpu_x4's network fine-tuned to survive JPEG, as codec_x2 (from the shipped x4 model)."""
  return cpu_x4().replace(train=_CODEC_RECIPE, objective=_CODEC_OBJECTIVE)


# Phone-sized networks (issue 17): narrow, two ResBlocks each side, one light coupling; the
# size was picked from a sweep of widths (docs/mobile.md). Small networks take a larger rate.
_MOBILE_MODEL = {"width": 16, "down_blocks": 2, "up_blocks": 2, "flow_cells": 1,
                 "flow_growth": 8}
_MOBILE_RECIPE = {**_CPU_RECIPE, "batch_size": 16, "steps": 3_000, "lr_halving_steps": 1_000,
                  "learning_rate": 5e-4}


def mobile_x2() -> Experiment:
  """A phone-sized x2 network: width 16, 2 ResBlocks in Gd and Gu, one coupling of growth 8
  (38k parameters, 35x fewer upscale FLOPs than x2); 3k steps of batch 16 of 96x96 from
  random weights, Adam 5e-4 halved every 1k (~10 minutes on an idle 2-core CPU)."""
  return x2().replace(model=_MOBILE_MODEL, train=_MOBILE_RECIPE)


def mobile_x4() -> Experiment:
  """The phone-sized network at x4 (mobile_x2's sizes), batch 16 of 128x128."""
  return x4().replace(model=_MOBILE_MODEL, train={**_MOBILE_RECIPE, "patch_size": 128})


def table3_x2() -> Experiment:
  """The paper's Table 3 guidance study at CPU scale: one budget for `--guidance` none, bicubic
  and flow.

  The x2 network, batch 4 of 96x96 HR patches (~1 step/s on an idle 2-core CPU), 800 steps,
  Adam 3e-4 halved at step 500, seed 0; validation every 200 steps on 5 held-out images.
  """
  return x2().replace(train={**_CPU_RECIPE, "batch_size": 4, "steps": 1_000,
                             "lr_halving_steps": 500, "steps_per_epoch": 200})


def quick() -> Experiment:
  """The default: the x2 network trained for a few minutes on a 2-core CPU.

  A demonstration of the whole loop. Measured (Nov 2026, the built-in images): 300 steps in
  3m55s on an idle 2-core CPU (9m27s when shared with another job); validation PSNR (RGB,
  8-bit round trip) 29.8 dB at step 50, 31.4 dB at 300; `eval_main.py` Set5 x2 34.95 / 0.9431,
  Set14 31.34 / 0.8958 (bicubic 33.68 / 0.9305, 30.33 / 0.8700).
  """
  return x2().replace(train={"batch_size": 4, "patch_size": 64, "steps": 300,
                             "lr_halving_steps": 10_000, "steps_per_epoch": 50, "val_images": 2,
                             "val_crop": 256})


def smoke() -> Experiment:
  """A tiny network for tests: trains end to end in well under a minute; the result is noise."""
  return x2().replace(
      model={"width": 8, "down_blocks": 1, "up_blocks": 1, "flow_cells": 2, "flow_growth": 4},
      train={"batch_size": 2, "patch_size": 32, "steps": 6, "lr_halving_steps": 1000,
             "steps_per_epoch": 3, "val_images": 1, "val_crop": 64})


PRESETS: dict[str, Callable[[], Experiment]] = {
    "x2": x2,
    "x4": x4,
    "quick": quick,
    "smoke": smoke,
    "cpu_x2": cpu_x2,
    "cpu_x4": cpu_x4,
    "table3_x2": table3_x2,
    "codec_x2": codec_x2,
    "codec_x4": codec_x4,
    "mobile_x2": mobile_x2,
    "mobile_x4": mobile_x4,
}


def preset(name: str) -> Experiment:
  try:
    return PRESETS[name]()
  except KeyError:
    raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def model_preset_for_scale(scale: int) -> ModelConfig:
  """The paper-sized network for a scale (x2 and x4 as published)."""
  if scale == 2:
    return x2().model
  if scale == 4:
    return x4().model
  raise ConfigError(f"no paper-sized preset for scale {scale}; the paper gives x2 and x4")
