"""Every ModelConfig, TrainConfig and Objective field as a command-line option: name, kind, help.

The training tool defines one flag per field from this (`fgrn_tf/cli/train.py`), so a field
added to a config is a flag at once, with its help taken from the class docstring.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Literal

from fgrn_tf.config import ModelConfig, Objective, TrainConfig


@dataclasses.dataclass(frozen=True)
class OverrideField:
  """One config field as a command-line option.

  Attributes:
    section: "model" (ModelConfig), "train" (TrainConfig) or "objective" (Objective).
    name: the field's name (and the flag's).
    kind: "int", "float", "bool", "str", "enum" or "list" (of strings).
    help: the field's line in its class docstring.
    choices: the values an "enum" takes.
  """

  section: str
  name: str
  kind: str
  help: str
  choices: tuple[str, ...] = ()


def attribute_docs(cls) -> dict[str, str]:
  """Field name -> its description in the "Attributes:" section of `cls`'s docstring."""
  docs, name, inside, indent = {}, None, False, None
  for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
    if line.strip() == "Attributes:":
      inside = True
      continue
    if not inside or not line.strip():
      continue
    depth = len(line) - len(line.lstrip())
    if indent is None:
      indent = depth
    if depth < indent:
      break
    if depth == indent:
      name, _, text = line.strip().partition(":")
      docs[name] = text.strip()
    else:
      docs[name] += " " + line.strip()
  return docs


def _kind(hint) -> tuple[str, tuple[str, ...]]:
  if typing.get_origin(hint) is Literal:
    return "enum", typing.get_args(hint)
  if typing.get_origin(hint) is tuple:
    return "list", ()
  return {int: "int", float: "float", bool: "bool", str: "str"}[hint], ()


def override_fields() -> list[OverrideField]:
  """Every ModelConfig, TrainConfig and Objective field, as the training tool's flags define
  them."""
  out = []
  for section, cls in (("model", ModelConfig), ("train", TrainConfig), ("objective", Objective)):
    hints, docs = typing.get_type_hints(cls), attribute_docs(cls)
    for f in dataclasses.fields(cls):
      kind, choices = _kind(hints[f.name])
      out.append(OverrideField(section, f.name, kind, docs[f.name], choices))
  return out
