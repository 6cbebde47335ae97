"""Shared test setup: quiet TF, and where the test data is. (`fgrn_tf` is installed by setup.sh.)

The data is not part of the repository, so it is found through the environment only, and the
tests that need it skip when it is not given (.ci/run sets all three):
  FGRN_SHARED       a folder with reference/ (MATLAB values), datasets/ and metrics/;
  FGRN_DATA_ROOT    the folder of named datasets (Set5/, Set14/); default $FGRN_SHARED/datasets;
  FGRN_NIQE_PARAMS  niqe_pris_params.npz; default $FGRN_SHARED/metrics/niqe_pris_params.npz.
"""

import fcntl
import json
import os
import pathlib
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]

from fgrn_tf import tf_env  # noqa: E402

tf_env.set_defaults()
# XLA compiles more cheaply in every process of the run (TF's `jit_compile` in this one and the
# tools it starts, the JAX subprocesses): it optimises the code less (level 0) and generates its
# fused loops with the older emitters. The quick benchmark's XLA training process went from 10.5
# to 6.4 s and the JAX training scripts' CPU time from ~23 to ~15 s (2-core EPYC). What the tests
# check (losses, resume, exact JPEG levels, agreement within a level) does not depend on either.
# Set before any tool server starts, so that the tools still fork from one (forked_tools).
CHEAP_XLA = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {CHEAP_XLA}".strip()

import pytest  # noqa: E402

# The modules that take longest, longest first (wall seconds under `-n 2` on a 2-core EPYC:
# 107, 66, 62, 53, 44, 37, 37, 37, 35, 31, 30, 27, 15, 14, 12, 11), then the rest in their own
# order. xdist hands whole modules (`--dist loadfile`) to whichever worker is free; by its own
# order (most tests first) test_distributed and test_gpu_campaign came last, and one worker ran
# on alone for ~18 s at the end.
LONGEST_FIRST = ("test_training.py", "test_jax.py", "test_export.py", "test_bench.py",
                 "test_quiet.py", "test_fgrn.py", "test_precision.py", "test_ship.py",
                 "test_codec_training.py", "test_cli.py", "test_serving.py", "test_distributed.py",
                 "test_jpeg.py", "test_eval.py", "test_backends.py", "test_gpu_campaign.py")


def pytest_configure(config):
  if hasattr(config.option, "loadscopereorder"):  # xdist's: keep the order below
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  gone = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()]
  if gone:
    raise pytest.UsageError(f"conftest.LONGEST_FIRST names modules that are gone: {gone}")
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module's order


def _env_path(name):
  value = os.environ.get(name)
  return pathlib.Path(value) if value else None


def _given(path, unset, exists):
  """`path` when `exists(path)`, else a skip: `unset` (which variable would give it) when no
  variable is set, or the path that is not there."""
  if path is None:
    pytest.skip(unset)
  if not exists(path):
    pytest.skip(f"{path} not present")
  return path


@pytest.fixture(scope="session")
def shared_dir():
  """$FGRN_SHARED: the test data folder (reference/ is read from it directly)."""
  return _given(_env_path("FGRN_SHARED"), "FGRN_SHARED not set", pathlib.Path.is_dir)


@pytest.fixture(scope="session")
def data_root():
  """The folder of named datasets: $FGRN_DATA_ROOT, else $FGRN_SHARED/datasets."""
  shared = _env_path("FGRN_SHARED")
  path = _env_path("FGRN_DATA_ROOT") or (shared / "datasets" if shared else None)
  return _given(path, "neither FGRN_DATA_ROOT nor FGRN_SHARED set", pathlib.Path.is_dir)


@pytest.fixture(scope="session")
def niqe_params_path():
  """NIQE's pristine model: $FGRN_NIQE_PARAMS, else $FGRN_SHARED/metrics/niqe_pris_params.npz."""
  shared = _env_path("FGRN_SHARED")
  path = _env_path("FGRN_NIQE_PARAMS") or (
      shared / "metrics" / "niqe_pris_params.npz" if shared else None)
  return _given(path, "neither FGRN_NIQE_PARAMS nor FGRN_SHARED set", pathlib.Path.is_file)


def _run_root(tmp_path_factory) -> pathlib.Path:
  """The folder of this test run that every xdist worker sees (each has its own below it)."""
  root = tmp_path_factory.getbasetemp()
  return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def every_format_export(tmp_path_factory):
  """One `fgrn-export` of the tiny model in every format (`helpers.export_every_format`), made
  once per test run: the first worker that asks builds it, under a lock, and the others wait
  for it and read it (about a minute of CPU on 2 cores). Read-only for the tests."""
  from helpers import export_every_format

  base = _run_root(tmp_path_factory) / "every_format_export"
  done = base / "done.json"
  with open(_run_root(tmp_path_factory) / "every_format_export.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.is_file():
      made = export_every_format(base)
      done.write_text(json.dumps({"stdout": made["stdout"]}))
  return types.SimpleNamespace(
      wd=base / "workdir", out=base / "out", stdout=json.loads(done.read_text())["stdout"],
      manifest=json.loads((base / "out" / "manifest.json").read_text()))


@pytest.fixture(scope="session")
def jax_env(tmp_path_factory) -> dict:
  """The environment of a JAX subprocess on the CPU. Compiling is most of the JAX tests' time:
  one XLA compilation cache serves the whole run (every xdist worker; the processes compile the
  same initializers and steps, ~1 s each on 2 cores), with the cheaper XLA of `CHEAP_XLA`
  (os.environ's XLA_FLAGS): the codec resume took ~28 s of CPU with it, ~38 s without."""
  root = _run_root(tmp_path_factory)
  return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
          "JAX_COMPILATION_CACHE_DIR": str(root / "jax_cache"),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


@pytest.fixture()
def eager_functions():
  """Runs every `tf.function` (Keras' train and test steps included) eagerly in this test.

  Tracing FGRN's training step takes ~8 s on 2 cores, each run of `fit` traces its own, and a
  test of what resumes or what a setting changes needs a few steps. Graph-mode training keeps
  its own tests (test_training's resume and the command-line runs); `tf.data` is unaffected.
  """
  import tensorflow as tf

  tf.config.run_functions_eagerly(True)
  try:
    yield
  finally:
    tf.config.run_functions_eagerly(False)
