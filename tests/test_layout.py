"""The package's layering: folders by pipeline stage, lower layers never importing higher ones,
no import cycles, imports at the top, and errors caught by their kind (docs/layout.md)."""

import ast
import pathlib

import pytest
from conftest import ROOT

PACKAGE = ROOT / "fgrn_tf"
# Rank of each top-level module or subpackage: a module may import its own rank or below.
RANKS = {
    "errors": 0, "files": 0, "progress": 0, "paper": 0, "config": 0, "tf_env": 0,
    "distribute": 0, "version": 0,
    "data": 1, "metrics": 1,
    "models": 2,
    "workdir": 3,
    "runtime": 4,
    "train": 5,
    "evaluate": 6, "rescale": 6,
    "export": 7, "api": 7,
    "cli": 8, "__init__": 9, "__main__": 9,
}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
  """(imported fgrn_tf module, line, inside a function) for each import of the package."""
  tree = ast.parse(path.read_text())
  found = []

  def visit(node, in_function):
    for child in ast.iter_child_nodes(node):
      inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
      if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("fgrn_tf"):
        for alias in child.names:
          target = f"{child.module}.{alias.name}"
          module = target if (PACKAGE.parent / (target.replace(".", "/") + ".py")).exists() or \
              (PACKAGE.parent / target.replace(".", "/")).is_dir() else child.module
          found.append((module, child.lineno, inside))
      elif isinstance(child, ast.Import):
        found.extend((a.name, child.lineno, inside) for a in child.names
                     if a.name.startswith("fgrn_tf"))
      visit(child, inside)

  visit(tree, False)
  return found


def _rank(module: str) -> int:
  parts = module.split(".")
  return RANKS["__init__"] if len(parts) == 1 else RANKS[parts[1]]


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_rank():
  for path in FILES:
    _rank(_module_name(path))  # KeyError names a folder docs/layout.md and RANKS do not know


def test_lower_layers_never_import_higher_ones():
  upward = [f"{_module_name(p)}:{line} imports {target}" for p in FILES
            for target, line, _ in _imports(p) if _rank(target) > _rank(_module_name(p))]
  assert not upward, upward


def test_no_import_cycles():
  graph = {_module_name(p): {t for t, _, _ in _imports(p)} for p in FILES}
  state, cycles = {}, []

  def walk(node, trail):
    state[node] = "open"
    for nxt in sorted(graph.get(node, ())):
      if nxt == node or nxt not in graph:
        continue
      # A package's __init__ is imported on the way to its modules: no edge back to it counts.
      if node.startswith(nxt + "."):
        continue
      if state.get(nxt) == "open":
        cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
      elif nxt not in state:
        walk(nxt, trail + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      walk(node, [node])
  assert not cycles, cycles


# Deferred imports of the package, each for TensorFlow's import time (seconds) on a path that
# must answer without it: the public face (its API and version too, as the names are asked for),
# `fgrn info`, a workdir read for its config alone, and the bicubic alpha of tiling and of the
# served graph (`fgrn-export` answers its flags first). cli/ imports its
# library after the flags parse, by design.
DEFERRED = {
    "fgrn_tf": {"fgrn_tf.models.fgrn", "fgrn_tf.workdir", "fgrn_tf.api", "fgrn_tf.version"},
    "fgrn_tf.rescale.commands": {"fgrn_tf.models.fgrn"},
    "fgrn_tf.workdir": {"fgrn_tf.models.fgrn"},
    "fgrn_tf.rescale.tiling": {"fgrn_tf.data.imresize"},
    "fgrn_tf.export.image_bytes": {"fgrn_tf.data.imresize"},
    "fgrn_tf.models.fgrn": {"fgrn_tf.models.jpeg"},
}


def test_package_imports_sit_at_the_top_outside_cli():
  hidden = [f"{_module_name(p)}:{line} imports {target}" for p in FILES
            if not _module_name(p).startswith("fgrn_tf.cli")
            for target, line, inside in _imports(p)
            if inside and target not in DEFERRED.get(_module_name(p), ())]
  assert not hidden, hidden


# `except Exception` turns a bug into a message; these only translate and re-raise.
BROAD_ALLOWED = {"fgrn_tf/export/folders.py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_errors_are_caught_by_their_kind(path):
  if str(path.relative_to(ROOT)) in BROAD_ALLOWED:
    return
  broad = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
           if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name)
           and node.type.id == "Exception"]
  assert not broad, f"{path}: except Exception at lines {broad}"
