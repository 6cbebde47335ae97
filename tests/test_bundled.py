"""The bundled models: package data found where the package is installed, `fgrn models`, and
`fgrn --version`. (.ci/run also installs the built wheel into a fresh venv and runs it.)"""

import json
import os
import re
import shutil
import sys

import forked_tools
import pytest
from conftest import ROOT

from fgrn_tf.rescale import commands
from fgrn_tf.runtime import shipped

NAMES = ["codec_x2", "codec_x4", "fgrn_x2", "fgrn_x4", "mobile_x2", "mobile_x4"]


def _python(code: str, cwd, pythonpath=None) -> str:
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  if pythonpath is not None:
    env["PYTHONPATH"] = str(pythonpath)
  proc = forked_tools.run([sys.executable, "-c", code], cwd=cwd, env=env, timeout=120)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout


def test_the_models_are_found_inside_the_package_wherever_it_is_installed(tmp_path):
  # A copy of the package away from the checkout, holding one model, as a wheel installs it:
  # the lookup must answer with the copy's folder, never one next to a repository.
  site = tmp_path / "site-packages"
  shutil.copytree(ROOT / "fgrn_tf", site / "fgrn_tf",
                  ignore=shutil.ignore_patterns("__pycache__", "shipped_models"))
  shutil.copytree(shipped.model_dir("mobile_x2"), site / "fgrn_tf" / "shipped_models" / "mobile_x2")
  out = _python("import fgrn_tf\n"
                "from fgrn_tf.runtime import resolve, shipped\n"
                "print(fgrn_tf.__file__)\n"
                "print(shipped.names())\n"
                "print(shipped.default_model_path(2).parent)\n"
                "print(resolve.model_spec('mobile_x2'))\n",
                cwd=tmp_path, pythonpath=site).split("\n")
  assert out[0] == str(site / "fgrn_tf" / "__init__.py")
  assert out[1] == "['mobile_x2']"
  assert out[2] == str(site / "fgrn_tf" / "shipped_models")
  assert out[3] == str(site / "fgrn_tf" / "shipped_models" / "mobile_x2")


def test_the_checkout_holds_each_model_once_inside_the_package():
  assert shipped.folder() == ROOT / "fgrn_tf" / "shipped_models"
  assert shipped.names() == NAMES
  assert not (ROOT / "models").exists()


def test_fgrn_models_lists_each_model_with_its_card_figures(capsys):
  assert commands.models() == 0
  lines = capsys.readouterr().out.splitlines()
  rows = {line.split()[0]: line for line in lines[1:-1]}
  assert list(rows) == NAMES
  assert rows["mobile_x2"].split()[1:] == ["x2", "0.6", "MB", "phone,", "lossless", "40.00", "/",
                                           "0.9757"]
  assert rows["codec_x4"].split()[1:5] == ["x4", "7.1", "MB", "JPEG"]
  assert "q75..95  " in rows["codec_x4"] and rows["codec_x4"].endswith("33.45 / 0.9175")
  assert rows["fgrn_x2"].split()[4] == "lossless"
  assert str(shipped.folder()) in lines[-1]


def test_fgrn_models_json_has_every_figure(capsys):
  commands.models(as_json=True)
  said = json.loads(capsys.readouterr().out)
  found = {m["name"]: m for m in said["models"]}
  assert found["fgrn_x4"]["set5"] == {"psnr": 34.09, "ssim": 0.9276}
  assert found["codec_x2"]["trained_for"] == "JPEG q75..95"
  size = sum(p.stat().st_size for p in shipped.model_dir("mobile_x2").rglob("*") if p.is_file())
  assert found["mobile_x2"]["size_bytes"] == size


CARD = """# FGRN x2

## Reconstruction: PSNR / SSIM of the HR round trip (Y, border = scale)

| method | Set14 | Set5 |
|---|---|---|
| bicubic down + bicubic up | 30.33 / 0.8700 | 33.68 / 0.9305 |
| FGRN (Keras) | 38.14 / 0.9696 | 41.24 / 0.9812 |
| FGRN (TFLite float16) | 1.00 / 0.1000 | 2.00 / 0.2000 |

## Through codecs

| method | Set5 |
|---|---|
| FGRN (Keras) | 9.99 / 0.9999 |
"""


def test_card_figures_are_the_shipped_models_row_in_the_datasets_column():
  assert shipped.card_figures(CARD) == (41.24, 0.9812)
  assert shipped.card_figures(CARD, "Set14") == (38.14, 0.9696)
  assert shipped.card_figures(CARD, "Urban100") is None
  assert shipped.card_figures(CARD.replace("41.24 / 0.9812", "-")) is None
  assert shipped.card_figures("# a card without figures\n") is None


@pytest.mark.parametrize("cfg, says", [
    ({"model": {"scale": 2, "width": 64}}, "lossless"),
    ({"model": {"scale": 2, "width": 64},
      "objective": {"codec_min_quality": 75, "codec_max_quality": 95}}, "JPEG q75..95"),
    # written before the objective had its own part
    ({"model": {"scale": 2, "width": 64, "codec_min_quality": 75, "codec_max_quality": 95}},
     "JPEG q75..95"),
    ({"model": {"scale": 4, "width": 24}}, "phone, lossless"),
    ({"model": {"scale": 3, "width": 24}}, "lossless"),  # no paper size to be smaller than
])
def test_what_a_model_was_trained_for_comes_from_its_config(cfg, says):
  assert shipped.trained_for(cfg) == says


def _fgrn(*argv, cwd):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  return forked_tools.run([sys.executable, "-m", "fgrn_tf", *argv], cwd=cwd, env=env,
                          timeout=120)


def test_version_is_pyprojects(tmp_path):
  # As pyproject.toml states it (tomllib is Python 3.11+; the package supports 3.10).
  version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
  proc = _fgrn("--version", cwd=tmp_path)
  assert proc.returncode == 0 and proc.stdout == f"fgrn {version}\n", proc.stderr
  assert _python("import fgrn_tf; print(fgrn_tf.__version__)", cwd=tmp_path) == f"{version}\n"


def test_models_command_on_the_command_line(tmp_path):
  proc = _fgrn("models", "--json", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  assert [m["name"] for m in json.loads(proc.stdout)["models"]] == NAMES
  proc = _fgrn("models", "--scale", "2", cwd=tmp_path)
  assert proc.returncode == 2 and proc.stderr == "fgrn: error: models takes no --scale\n"
