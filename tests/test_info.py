"""`python -m fgrn_tf info` prints the parameter counts."""

import json
import sys

import forked_tools
from conftest import ROOT


def test_info_json_has_per_module_counts_that_add_up():
  out = forked_tools.run([sys.executable, "-m", "fgrn_tf", "info", "--scale", "2", "--json"],
                         cwd=ROOT, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  counts = json.loads(out.stdout.strip().splitlines()[-1])
  assert counts["Gd"] + counts["Gu"] + counts["F"] == counts["total"]
  assert abs(counts["total"] / 1.33e6 - 1) < 0.03
