"""The suite's tool runner (tests/forked_tools.py) gives what a fresh process gives."""

import os
import subprocess
import sys

import forked_tools
import pytest

# Prints what a run takes from its caller; says on stderr whether TF was loaded before it ran
# (the server's children have it: the one thing that differs).
PROBE = """
import os, sys
print(sys.argv[1:], os.getcwd(), os.environ.get("PROBE"), sys.stdin.read() or None)
print("own line", file=sys.stderr)
print("tensorflow" in sys.modules, file=sys.stderr)
if sys.argv[1] == "raise":
  raise ValueError("a bug")
sys.exit(int(sys.argv[1]))
"""


def _both(monkeypatch, args, **kwargs):
  monkeypatch.setenv("FGRN_TEST_FORK", "1")  # whatever the suite's setting
  forked = forked_tools.run(args, **kwargs)
  with monkeypatch.context() as m:
    m.setenv("FGRN_TEST_FORK", "0")
    fresh = forked_tools.run(args, **kwargs)
  return forked, fresh


def test_a_forked_run_exits_and_prints_as_a_fresh_process(tmp_path, monkeypatch):
  env = {**os.environ, "PROBE": "x"}
  forked, fresh = _both(monkeypatch, [sys.executable, "-c", PROBE, "3", "a b"], cwd=tmp_path,
                        env=env, input="typed", timeout=60)
  assert forked.returncode == fresh.returncode == 3
  assert forked.stdout == fresh.stdout == f"['3', 'a b'] {tmp_path} x typed\n"
  assert forked.stderr == "own line\nTrue\n" and fresh.stderr == "own line\nFalse\n"

  forked, fresh = _both(monkeypatch, [sys.executable, "-c", PROBE, "raise"], cwd=tmp_path,
                        timeout=60)
  assert forked.returncode == fresh.returncode == 1
  assert forked.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1] == "ValueError: a bug"


def test_a_run_whose_start_up_differs_starts_a_fresh_process(tmp_path):
  env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}  # read when TF loads
  run = forked_tools.run([sys.executable, "-c", PROBE, "0"], cwd=tmp_path, env=env, timeout=60)
  assert run.returncode == 0 and run.stderr.endswith("False\n")


def test_a_forked_run_past_its_timeout_is_killed(monkeypatch):
  monkeypatch.setenv("FGRN_TEST_FORK", "1")
  with pytest.raises(subprocess.TimeoutExpired):
    forked_tools.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)
  assert forked_tools.run([sys.executable, "-c", PROBE, "0"], timeout=60).returncode == 0
