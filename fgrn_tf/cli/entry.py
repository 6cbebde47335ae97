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
from fgrn_tf.errors import EXIT_INTERRUPTED


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


def usage_flags_parser(prog: str) -> Callable[[list[str]], list[str]]:
  """absl's flag parsing, with a flag it cannot take (unknown, missing or bad value) told as
  `PROG: error: ...` on stderr and exit 2, like any UsageError, instead of absl's FATAL text
  and exit 1."""
  from fgrn_tf.errors import UsageError, one_line

  def parse(argv: list[str]) -> list[str]:
    from absl import flags

    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"{prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
      sys.exit(UsageError.exit_code)

  return parse


def run(prog: str, main: Callable[[list[str]], int | None], argv=None) -> None:
  """Runs an absl `main` as the program `prog` (exits the process with its status).

  Args:
    prog: the name errors are printed under.
    main: takes the arguments left after the flags (argv[0] first).
    argv: the command line (default sys.argv).
  """
  tf_env.set_defaults()  # before absl or any library imports TensorFlow
  from absl import app, flags

  # --help lists the flags of the program's main module: a console script or a shim defines
  # none, so those of the module that defines `main` (fgrn_tf.cli.<tool>) stand in for them.
  for flag in flags.FLAGS.get_key_flags_for_module(main.__module__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(guarded(prog, main), argv=argv, flags_parser=usage_flags_parser(prog))
