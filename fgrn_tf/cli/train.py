"""fgrn-train: trains FGRN (Li et al., BMVC 2021) from a preset, any config field overridden.

`fgrn-train --preset quick --workdir runs/quick` (or `python train_main.py ...`). Running the
same command again continues the run in --workdir from its last backup. Every field of
`config.ModelConfig`, `config.TrainConfig` and `config.Objective` is a flag of the same name,
its help text the field's description; the preset + flags -> Experiment rule is
`Experiment.with_overrides`.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys

from absl import flags

from fgrn_tf import config
from fgrn_tf.cli import common_flags, config_fields, entry
from fgrn_tf.config import BACKENDS
from fgrn_tf.errors import UsageError

INSTALL = {"tensorflow": "tensorflow-cpu==2.21.0", "jax": "jax[cpu]==0.10.2"}

_KINDS = {"int": flags.DEFINE_integer, "float": flags.DEFINE_float, "bool": flags.DEFINE_bool,
          "str": flags.DEFINE_string, "list": flags.DEFINE_list}

_PRESET = flags.DEFINE_enum("preset", "quick", sorted(config.PRESETS),
                            "Model and recipe to start from (config.py); flags below override it.")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Run folder (config, weights, backup, TensorBoard). Rerun the same "
                               "command to continue. Default: runs/<preset>.")
_MAX_PIXELS = common_flags.max_pixels()
_BACKEND = flags.DEFINE_enum(
    "backend", None, list(BACKENDS),
    "Keras backend to train on: tensorflow (tf.distribute, TensorBoard) or jax (JAX's devices "
    "through Keras' DataParallel; docs/training.md). Default: $KERAS_BACKEND, else tensorflow.")


def _define(field: config_fields.OverrideField) -> flags.FlagHolder:
  text = f"{field.help[:1].upper()}{field.help[1:]} Default: the preset's."
  if field.kind == "enum":
    return flags.DEFINE_enum(field.name, None, list(field.choices), text)
  return _KINDS[field.kind](field.name, None, text)


# One flag per config field: (section, holder) by name.
_FIELDS = {f.name: (f.section, _define(f)) for f in config_fields.override_fields()}


def experiment_from_flags() -> config.Experiment:
  """The preset with the flags given on the command line (ConfigError for a bad value)."""
  given = {"model": {}, "train": {}, "objective": {}}
  for name, (section, holder) in _FIELDS.items():
    given[section][name] = holder.value
  return config.preset(_PRESET.value).with_overrides(**given)


def choose_backend(flag: str | None) -> str:
  """Sets KERAS_BACKEND (before anything imports Keras) from --backend or the environment;
  UsageError (one line) for an unknown backend or one that is not installed."""
  backend = flag or os.environ.get("KERAS_BACKEND") or "tensorflow"
  if backend not in BACKENDS:
    raise UsageError(f"KERAS_BACKEND={backend}: FGRN trains on {' or '.join(BACKENDS)}")
  if importlib.util.find_spec(backend) is None:
    raise UsageError(f"the {backend} backend is not installed: pip install "
                     f"'{INSTALL[backend]}' (BUILD.md)")
  if "keras" in sys.modules and sys.modules["keras"].backend.backend() != backend:
    raise UsageError(f"Keras runs on {sys.modules['keras'].backend.backend()} in this process "
                     f"already; cannot switch to {backend}")
  os.environ["KERAS_BACKEND"] = backend
  return backend


def _main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  experiment = experiment_from_flags()
  backend = choose_backend(_BACKEND.value)
  from fgrn_tf.data import images
  from fgrn_tf.train import recipe

  images.set_max_pixels(_MAX_PIXELS.value, flag="--max_pixels")  # before Keras imports cv2
  # Before TF's import (seconds): a wrong recipe or folder, or a workdir another run holds,
  # is one line at once.
  recipe.check(experiment, backend)
  recipe.check_folders(experiment)
  from fgrn_tf import workdir as wd

  workdir = _WORKDIR.value or os.path.join("runs", _PRESET.value)
  if not os.environ.get("TF_CONFIG"):  # a worker of a cluster locks by its role, known to TF
    wd.check_free(workdir)
    # A rerun of a finished run (README's first command, twice) answers at once. Its notes on
    # changed settings are printed once, by whichever of this and the trainer goes on.
    notes = io.StringIO()
    complete, _ = recipe.check_workdir(experiment, workdir, backend, notes)
    if complete:
      print(notes.getvalue(), end="")
      print(recipe.Summary.from_state(wd.read_state(workdir), experiment.train.steps, 0.0,
                                      True).text(workdir))
      return 0
  from fgrn_tf import distribute
  from fgrn_tf.train import trainer

  try:
    trainer.check_experiment(experiment)
    # The strategy before other TensorFlow work: a multi-worker one must come first.
    strategy = distribute.choose_strategy() if backend == "tensorflow" else None
    summary = trainer.train(experiment, workdir, strategy=strategy)
  except KeyboardInterrupt:
    # Not entry's plain "interrupted": the user wants to know that nothing is lost.
    step = wd.read_state(workdir).get("step", 0)
    print(f"\ninterrupted; rerun the same command to continue from step {step}", file=sys.stderr)
    return entry.EXIT_INTERRUPTED
  print(summary.text(workdir))
  return 0


def main(argv=None) -> None:
  # Named as it was started (train_main.py, fgrn-train), as argparse names a program.
  entry.run(os.path.basename(sys.argv[0]) or "fgrn-train", _main, argv)


if __name__ == "__main__":
  main()
