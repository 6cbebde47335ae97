"""docs/python.md runs: each ```python block, in order, in one namespace (as a reader would
type them), so the documented API cannot drift from the package."""

import re

from conftest import ROOT

DOC = ROOT / "docs" / "python.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def test_the_page_has_examples():
  assert len(BLOCKS) >= 5


def test_every_example_runs_in_order(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the examples write files where they run
  namespace = {"__name__": "docs_python"}
  for i, code in enumerate(BLOCKS, 1):
    # The traceback names the block: "docs/python.md, block 3", line 2.
    exec(compile(code, f"docs/python.md, block {i}", "exec"), namespace)
