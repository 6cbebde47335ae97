"""bench/gpu_campaign.sh, the one prepared call of a lent GPU machine, run here on the CPU:
the same command and carried folders, JAX on CPU, tiny sizes."""

import json
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest
from conftest import ROOT
from helpers import photo

pytest.importorskip("jax")


def _campaign(tmp_path, jax_env, *flags):
  carry = tmp_path / "carry"
  (carry / "images").mkdir(parents=True, exist_ok=True)
  for i in range(4):
    cv2.imwrite(str(carry / "images" / f"p{i}.webp"), photo(48, 56, seed=i),
                [cv2.IMWRITE_WEBP_QUALITY, 101])
  env = {**jax_env, "OUT": str(tmp_path / "out"), "WORKDIR": str(tmp_path / "run"),
         "CARRY": str(carry), "PYTHON": sys.executable}
  return subprocess.run(["bench/gpu_campaign.sh", "smoke", "", "0.05", "--batch", "2",
                         "--patch", "32", "--steps_per_epoch", "3", *flags],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_the_campaign_refuses_in_one_line_where_there_is_no_gpu(tmp_path, jax_env):
  result = _campaign(tmp_path, jax_env)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "gpu_campaign: error: no GPU: JAX sees cpu only (--allow_cpu to run anyway)")
  assert not (tmp_path / "out").exists()


def test_the_campaign_trains_and_writes_its_results_on_cpu(tmp_path, jax_env):
  result = _campaign(tmp_path, jax_env, "--allow_cpu", "--precision", "mixed_bfloat16")
  assert result.returncode == 0, result.stderr[-3000:]
  out = tmp_path / "out"
  names = {p.name for p in out.iterdir()}
  assert names == {"campaign.json", "config.json", "train_state.json", "history.jsonl",
                   "best.weights.h5", "last.weights.h5"}
  assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
  log = json.loads((out / "campaign.json").read_text())
  assert log["versions"]["backend"] == "jax" and log["platform"] == "cpu"
  assert log["steps"] == 3 and log["steps_per_s"] > 0 and log["images_per_s"] > 0
  assert np.isfinite(log["best_val_psnr"])
  with h5py.File(out / "best.weights.h5") as f:
    kinds = set()
    f.visititems(lambda _, item: kinds.add(item.dtype) if isinstance(item, h5py.Dataset)
                 else None)
  assert np.dtype("float16") in kinds and np.dtype("float32") not in kinds
