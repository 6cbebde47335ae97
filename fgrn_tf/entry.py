"""What every fgrn-tf entry point does around its work: quiet TF, one-line errors, exit codes.

The tools (`fgrn`, `fgrn-train`, `fgrn-eval`, `fgrn-export`, `fgrn-ship`; `train_main.py` and
the other scripts call the same functions) are absl programs. `run` starts one: it applies
`tf_env` before anything imports TensorFlow, and turns an `FGRNError` into `PROG: error: ...`
on stderr with the error's exit code, so no tool needs its own `except` for the policy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from fgrn_tf import tf_env

EXIT_INTERRUPTED = 130


def guarded(prog: str, main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int]:
  """`main` with the error policy: FGRNError -> one line and its exit code; Ctrl-C -> 130."""
  from fgrn_tf.errors import FGRNError, one_line

  def wrapped(argv: list[str]) -> int:
    try:
      return main(argv) or 0
    except FGRNError as e:
      print(f"{prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
      return e.exit_code
    except KeyboardInterrupt:
      print(f"{prog}: interrupted", file=sys.stderr, flush=True)
      return EXIT_INTERRUPTED

  return wrapped


def run(prog: str, main: Callable[[list[str]], int | None], argv=None) -> None:
  """Runs an absl `main` as the program `prog` (exits the process with its status)."""
  tf_env.set_defaults()  # before absl or any library imports TensorFlow
  from absl import app

  app.run(guarded(prog, main), argv=argv)
