"""fgrn-tf: FGRN image rescaling (Li et al., BMVC 2021) in TensorFlow / Keras 3."""

from fgrn_tf.config import PRESETS, Experiment, ModelConfig, TrainConfig, preset
from fgrn_tf.models.fgrn import FGRN

__all__ = ["FGRN", "Experiment", "ModelConfig", "PRESETS", "TrainConfig", "preset"]
