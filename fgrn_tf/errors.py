"""The one error policy of every fgrn-tf tool: a problem the user can fix is one line and an exit.

Library code raises `FGRNError` (or a subclass) with a message that names the file, flag or
value at fault; the entry points catch it in one place (`fgrn_tf.cli.entry`) and print it as
`PROG: error: MESSAGE`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FGRNError(Exception):
  """An error a user can act on; its message is one line naming what is wrong.

  Attributes:
    exit_code: the status the tools exit with (1; usage errors use 2).
  """

  exit_code = 1


class UsageError(FGRNError):
  """Bad flags or arguments: nothing was done."""

  exit_code = 2


# What a tool exits with when Ctrl-C stops it (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def one_line(error: BaseException) -> str:
  """An exception's message on one line: its first line, and the next when the first only
  introduces it (ends with ':'). Library errors (TF, h5py, converters) can span pages."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if not lines:
    return type(error).__name__
  if lines[0].endswith(":") and len(lines) > 1:
    return f"{lines[0]} {lines[1]}"
  return lines[0]


def os_reason(error: OSError) -> str:
  """The reason of an OSError without the path it carries (often a temporary file's)."""
  return error.strerror or type(error).__name__
