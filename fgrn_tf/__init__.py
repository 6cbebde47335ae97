"""fgrn-tf: FGRN image rescaling (Li et al., BMVC 2021) in TensorFlow / Keras 3."""

from fgrn_tf.config import PRESETS, Experiment, ModelConfig, TrainConfig, preset

__all__ = ["FGRN", "Experiment", "ModelConfig", "PRESETS", "TrainConfig", "load_model", "preset"]


def __getattr__(name):
  # TensorFlow takes seconds to import: entry points that fail on a bad flag or a missing file
  # should say so at once, so the model classes load only when asked for.
  if name == "FGRN":
    from fgrn_tf.models.fgrn import FGRN
    return FGRN
  if name == "load_model":
    from fgrn_tf.workdir import load_model
    return load_model
  raise AttributeError(f"module 'fgrn_tf' has no attribute {name!r}")
