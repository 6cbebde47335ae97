"""Shared test setup: quiet TF, paths to ../shared. (`fgrn_tf` is installed by setup.sh.)"""

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

from fgrn_tf import tf_env  # noqa: E402

tf_env.set_defaults()

import pytest  # noqa: E402

SHARED = pathlib.Path(os.environ.get("FGRN_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir():
  if not SHARED.is_dir():
    pytest.skip(f"{SHARED} not present")
  return SHARED
