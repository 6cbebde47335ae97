"""fgrn-tf: FGRN image rescaling (Li et al., BMVC 2021) in TensorFlow / Keras 3.

    import fgrn_tf
    model = fgrn_tf.load("codec_x2")      # a bundled model's name, or any model path
    lr = model.downscale(hr)              # uint8 [H, W, 3] -> [H/2, W/2, 3]; files work too

docs/python.md has the whole API.
"""

from fgrn_tf.config import PRESETS, Experiment, ModelConfig, TrainConfig, preset
from fgrn_tf.errors import FGRNError

__all__ = ["FGRN", "Experiment", "FGRNError", "ModelConfig", "PRESETS", "Rescaler",
           "TrainConfig", "__version__", "bundled_models", "load", "load_model", "preset"]

_API = ("load", "Rescaler", "bundled_models")


def __getattr__(name):
  # TensorFlow takes seconds to import: entry points that fail on a bad flag or a missing file
  # should say so at once, so the model classes load only when asked for.
  if name == "FGRN":
    from fgrn_tf.models.fgrn import FGRN
    return FGRN
  if name == "load_model":
    from fgrn_tf.workdir import load_model
    return load_model
  if name in _API:
    from fgrn_tf import api
    return getattr(api, name)
  if name == "__version__":
    from fgrn_tf.version import version
    return version()
  raise AttributeError(f"module 'fgrn_tf' has no attribute {name!r}")
