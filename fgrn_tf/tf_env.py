"""TensorFlow settings read from the environment when TF starts; entry points apply them first.

`TF_CPU_ALLOCATOR_USE_BFC=true`: TF's default CPU allocator hands each large tensor back to the
system when it dies, so the next one of that size page-faults its memory in again. FGRN's flow
makes many short-lived full-resolution tensors (dense-block features), and on the 2-core CI
machine the BFC allocator, which keeps and reuses them, made a 512x512 x2 round trip 19% faster
(4.17 -> 3.39 s) and an elementwise add of a 34 MB tensor 2.1x faster (BENCHMARKS.md). The price is
memory the allocator keeps: peak RSS of an untiled 4-megapixel round trip 2506 -> 3391 MiB,
tiled (1024) 1241 -> 1488 MiB. A value already set in the environment wins, so
`TF_CPU_ALLOCATOR_USE_BFC=false` restores TF's default.

Third-party log lines (docs/logging.md): the tools promise one line of their own per problem, but
the libraries below them write to the C-level stderr whatever we ask. On a CPU with AVX-512,
TensorFlow turns its oneDNN kernels on and, before absl's logging has started and so whatever
`TF_CPP_MIN_LOG_LEVEL` says, prints "oneDNN custom operations are on" twice at import; libpng,
OpenCV, the TFLite converter and the LiteRT interpreter (its XNNPACK INFO line) add their own.
Only `TF_ENABLE_ONEDNN_OPTS=0` would stop the first, and it costs speed, so instead fd 2 is fed
through a filter that drops the known lines and passes every other byte, fatal (F) lines and
crash reports included. The filter is a separate process, not a thread: a TF CHECK failure aborts
the process at once, and a thread would die with the fatal line still unread in its pipe, while a
process reads to the end of the pipe after its writer is gone. Python's own `sys.stderr` is moved
to a copy of the real stderr, so our messages and tracebacks are never filtered nor delayed.
`FGRN_VERBOSE=1` leaves stderr alone (and OpenCV at its own log level).

Optional imports (`OPTIONAL_IMPORTS`): TF 2.21 and Keras 3 each try a few packages at import
time for features our tools never use (TFLite's JAX conversion, Keras' Orbax callback and its
plotting helpers). Where jax and matplotlib are installed, as in this project's venv, they cost
~1.1 s of the ~3.3 s a tool takes to import TF (2-core EPYC, `-X importtime`), before its first
line of work. Each of those imports sits in `try: ... except ImportError`, so `set_defaults`
makes them fail, for those importers alone and only while the package is not loaded: anything
else that imports jax or matplotlib (our plots, the JAX backend, a user's code) gets it.
"""

from __future__ import annotations

import atexit
import importlib.abc
import logging
import os
import re
import subprocess
import sys

DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TF's C++ INFO/WARNING lines hide our own messages
    "TF_CPU_ALLOCATOR_USE_BFC": "true",
}
# Read by OpenCV when it loads: its WARN lines on a corrupt image repeat our one line per file.
QUIET_DEFAULTS = {"OPENCV_LOG_LEVEL": "ERROR"}
VERBOSE_VARIABLE = "FGRN_VERBOSE"
# Python loggers whose INFO lines reach absl's handler (the root logger's) and so stderr:
# matplotlib's "generated new fontManager" on a machine's first figure; JAX's "Unable to
# initialize backend 'tpu'" on every machine without one.
QUIET_PYTHON_LOGGERS = ("matplotlib", "jax")

# package -> the modules whose optional import of it set_defaults turns into an ImportError.
OPTIONAL_IMPORTS = {
    "jax": ("tensorflow.lite.python.util", "keras.src.callbacks.orbax_checkpoint"),
    "matplotlib": ("keras.src.visualization.plot_image_gallery",
                   "keras.src.visualization.plot_bounding_box_gallery"),
}

# Whole lines (without their newline) that the stderr filter drops. Anything else is passed on:
# an unknown line may be the one that explains a failure.
NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    # absl / glog lines from TF's and XLA's C++: I, W and E only, as F (fatal) precedes a crash.
    # Python's absl lines look the same but name a .py file: ours must never be dropped. Before
    # absl's logging starts, the seconds are since 1970: "I0000 00:00:1796173269.633567".
    rb"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+\.(?:cc|cpp|c|h):\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+\.(?:cc|cpp|c|h):\d+\] "  # TF < 2.13
    rb"|\[ ?(?:WARN|INFO|DBG|DEBUG|VERB|VERBOSE):[^\]]*\] "  # OpenCV's logger
    rb"|libpng (?:warning|error): "  # each unreadable image already gets our own line
    rb"|INFO: "  # TFLite / LiteRT ("Created TensorFlow Lite XNNPACK delegate for CPU.")
    rb"|fully_quantize: \d+, inference_type: "  # the TFLite converter's quantizer
)

# The filter process: stdin is the pipe that fd 2 writes to, stdout the real stderr. `-I -S`
# start it in a few milliseconds and keep PYTHON* variables and site-packages out of it.
_FILTER_SOURCE = r"""
import os, re, select, signal, sys
# Ctrl-C goes to the whole process group; the filter must outlive its writer to pass on the
# writer's last lines, and it exits by itself at the end of the pipe.
signal.signal(signal.SIGINT, signal.SIG_IGN)
noise = re.compile(sys.argv[1].encode("latin-1"))
broken = False


def write(data):
  global broken
  while data and not broken:
    try:
      data = data[os.write(1, data):]
    except OSError:  # the reader of stderr went away: keep draining so writers never block
      broken = True


pending = b""
while True:
  if pending and not select.select([0], [], [], 0.2)[0]:
    if not noise.match(pending):
      write(pending)  # a line without its end (a prompt?) is shown rather than held
    pending = b""
    continue
  try:
    chunk = os.read(0, 65536)
  except InterruptedError:
    continue
  if not chunk:
    break
  *lines, pending = (pending + chunk).split(b"\n")
  write(b"".join(line + b"\n" for line in lines if not noise.match(line)))
if pending and not noise.match(pending):
  write(pending)
"""

_filter = None  # (filter process, quiet sys.stderr) while installed
_quieted = []  # the QUIET_DEFAULTS that set_defaults put in the environment
_done = []  # removed filters, kept: a Popen dropped while its process runs warns


def verbose() -> bool:
  """Whether `FGRN_VERBOSE` asks for the libraries' own log lines."""
  return os.environ.get(VERBOSE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def is_noise(line: bytes) -> bool:
  """Whether the stderr filter drops `line` (one line, its newline optional)."""
  return NOISE.match(line.rstrip(b"\n")) is not None


def set_defaults() -> None:
  """Sets each of `DEFAULTS` not already in the environment and, unless `FGRN_VERBOSE`, filters
  third-party lines out of stderr; call before importing TF."""
  for key, value in DEFAULTS.items():
    os.environ.setdefault(key, value)
  skip_optional_imports()
  if not verbose():
    for key, value in QUIET_DEFAULTS.items():
      if key not in os.environ:
        os.environ[key] = value
        _quieted.append(key)
    quiet_third_party_logs()
    for name in QUIET_PYTHON_LOGGERS:
      logging.getLogger(name).setLevel(logging.WARNING)


class _SkipOptionalImports(importlib.abc.MetaPathFinder):
  """Fails the imports of `OPTIONAL_IMPORTS` made by their listed importers."""

  def find_spec(self, name, path, target=None):
    package = name.partition(".")[0]
    importers = OPTIONAL_IMPORTS.get(package)
    if importers is None or package in sys.modules:
      return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
      frame = frame.f_back  # the import machinery's own frames, up to the `import` statement
    if frame is not None and frame.f_globals.get("__name__") in importers:
      raise ModuleNotFoundError(f"No module named {name!r} (optional, skipped by fgrn_tf)",
                                name=name)
    return None


def skip_optional_imports() -> None:
  """Installs the finder of `OPTIONAL_IMPORTS` once; call before importing TF."""
  if not any(isinstance(finder, _SkipOptionalImports) for finder in sys.meta_path):
    sys.meta_path.insert(0, _SkipOptionalImports())


def quiet_third_party_logs() -> bool:
  """Sends fd 2 through the filter of `NOISE` lines; True when the filter is (already) on.

  Does nothing when stderr is not this process's own fd 2 (pytest or a caller capturing it:
  moving the fd under them would take their output) or `FGRN_VERBOSE` is set.
  """
  global _filter
  if _filter is not None:
    return True
  if verbose() or os.name != "posix" or not sys.executable or sys.stderr is not sys.__stderr__:
    return False
  try:
    if sys.stderr.fileno() != 2:
      return False
    sys.stderr.flush()
  except (AttributeError, OSError, ValueError):  # no stderr, or not one backed by a file
    return False
  real = os.dup(2)  # not inherited by children: theirs is the filtered fd 2
  read, write = os.pipe()
  try:
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _FILTER_SOURCE, NOISE.pattern.decode("latin-1")],
        stdin=read, stdout=real, stderr=real)
  except OSError:
    for fd in (real, write):
      os.close(fd)
    return False
  finally:
    os.close(read)
  os.dup2(write, 2)
  os.close(write)
  # `real` stays open for good: loggers made from here on (absl's, TF's) keep this stream.
  stream = sys.__stderr__
  sys.stderr = open(real, "w", buffering=1, encoding=stream.encoding, errors=stream.errors,
                    closefd=False)
  _filter = (proc, sys.stderr)
  atexit.register(_remove_filter)
  return True


def show_third_party_logs() -> None:
  """Undoes `quiet_third_party_logs` for this process and the ones it starts; for `--verbose`.

  Lines already dropped stay dropped: TF's import-time ones only show when this runs before TF
  is imported.
  """
  os.environ[VERBOSE_VARIABLE] = "1"
  while _quieted:  # too late for a library already loaded, in time for the others
    os.environ.pop(_quieted.pop(), None)
  _remove_filter()


def _remove_filter(timeout: float = 1.0) -> None:
  # At exit too: the filter passes on its last lines before the shell prints its prompt.
  global _filter
  if _filter is None:
    return
  proc, quiet = _filter
  _filter = None
  atexit.unregister(_remove_filter)
  for stream in (sys.stdout, quiet):
    try:
      stream.flush()
    except (AttributeError, OSError, ValueError):
      pass
  if sys.stderr is quiet:
    sys.stderr = sys.__stderr__
  os.dup2(quiet.fileno(), 2)  # drops our end of the pipe: the filter reads to its end and exits
  _done.append(proc)
  try:
    proc.wait(timeout)
  except subprocess.TimeoutExpired:  # a child process still holds the pipe: it stays filtered
    pass
