"""Runs a tool the way `subprocess.run([python, ...])` does, in a child forked from a process
that has already imported TensorFlow and Keras.

Importing TF and Keras is ~3 of the ~4-10 CPU-seconds a short tool run takes in the tests, and
the suite runs dozens of them. Each xdist worker keeps one server process (this file, run as a
script) that imports them once, before TF's runtime starts (no device, no thread pool yet), and
forks a child per run. The child takes the run's working folder, environment, argv, umask and
standard streams (files), then runs the script, module or `-c` code as `__main__` and exits as
a Python process does: its exit status, its tracebacks, its atexit handlers. So a tool's
behaviour, output and exit code are what a fresh process gives; only start-up differs. That is
why a run falls back to a real process when what start-up reads differs from the server's (the
variables of `_read_at_import`, PYTHONPATH among them; interpreter options such as
`-X importtime`; programs other than Python), and why the tests of what a start prints or
imports (test_quiet, the `-X importtime` checks) start real processes themselves.
`FGRN_TEST_FORK=0` runs every tool in a fresh process.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import tempfile

_READ_AT_IMPORT = ("TF_", "KERAS_", "XLA_", "JAX_", "OMP_", "MKL", "OPENBLAS_", "OPENCV_",
                   "PYTHON", "CUDA", "LD_", "GRPC_", "MALLOC", "FGRN_VERBOSE")


def _read_at_import(env) -> dict:
  """The variables that the libraries (and Python) read when they load."""
  return {key: value for key, value in env.items() if key.startswith(_READ_AT_IMPORT)}


# ---- the server (this file as a script) ------------------------------------------------------

def _read_line(fd: int) -> bytes:
  # os.read, not sys.stdin: a child must find sys.stdin's buffer as a fresh process does (empty).
  line = b""
  while not line.endswith(b"\n"):
    chunk = os.read(fd, 65536)
    if not chunk:
      return b""
    line += chunk
  return line


def _serve() -> dict:
  """Forks a child per request and answers its pid, then its wait status; returns the request
  in the child, and exits when the client closes the pipe."""
  while True:
    line = _read_line(0)
    if not line:
      os._exit(0)
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
      return request
    os.write(1, json.dumps({"pid": pid}).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    os.write(1, json.dumps({"status": status}).encode() + b"\n")


def _become(request: dict) -> None:
  """Turns this child into the process the request describes, up to running its code."""
  for fd, path, flags in ((0, request["stdin"], os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                          (2, request["stderr"], os.O_WRONLY)):
    opened = os.open(path, flags)
    os.dup2(opened, fd)
    os.close(opened)
  os.chdir(request["cwd"])
  os.environ.clear()
  os.environ.update(request["env"])
  if request["umask"] is not None:
    os.umask(request["umask"])


if __name__ == "__main__":
  from fgrn_tf import tf_env

  for key, value in tf_env.DEFAULTS.items():  # as the tools set them; not the stderr filter,
    os.environ.setdefault(key, value)          # which each child starts for itself
  # Not OpenCV, which Keras' box-drawing helper loads when it can: a tool sets OpenCV's pixel
  # ceiling in the environment (from --max_pixels) before OpenCV loads and reads it.
  tf_env.OPTIONAL_IMPORTS["cv2"] = ("keras.src.visualization.draw_bounding_boxes",)
  tf_env.skip_optional_imports()
  import absl.app  # noqa: F401
  import keras  # noqa: F401
  import numpy  # noqa: F401
  import tensorflow  # noqa: F401

  assert "cv2" not in sys.modules
  import gc

  gc.freeze()  # the children's collections then leave the server's objects (and pages) alone

  _request = _serve()
  _become(_request)
  import runpy

  sys.argv = list(_request["argv"])
  if _request["kind"] == "module":
    sys.path[0] = os.getcwd()
    runpy.run_module(_request["target"], run_name="__main__", alter_sys=True)
  elif _request["kind"] == "code":
    import types

    sys.path[0] = ""
    sys.modules["__main__"] = _main = types.ModuleType("__main__")
    exec(compile(_request["target"], "<string>", "exec"), _main.__dict__)
  else:
    sys.path[0] = os.path.dirname(os.path.abspath(_request["target"]))
    runpy.run_path(_request["target"], run_name="__main__")
  sys.exit(0)


# ---- the client ------------------------------------------------------------------------------

class _Server:
  def __init__(self):
    self.env = _read_at_import(os.environ)
    self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 cwd=pathlib.Path(__file__).parents[1])
    self.pending = b""

  def _reply(self, timeout: float | None = None) -> dict | None:
    """The server's next line, or None when none came within `timeout`."""
    fd = self.proc.stdout.fileno()
    while b"\n" not in self.pending:
      if not select.select([fd], [], [], timeout)[0]:
        return None
      chunk = os.read(fd, 65536)
      if not chunk:
        raise RuntimeError("the tool server exited")
      self.pending += chunk
    line, _, self.pending = self.pending.partition(b"\n")
    return json.loads(line)

  def ask(self, request: dict, timeout: float | None) -> tuple[int, bool]:
    """(wait status, whether the run was killed at `timeout`)."""
    self.proc.stdin.write(json.dumps(request).encode() + b"\n")
    self.proc.stdin.flush()
    pid = self._reply()["pid"]
    reply = self._reply(timeout)
    if reply is None:
      os.kill(pid, signal.SIGKILL)
      return self._reply()["status"], True
    return reply["status"], False

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(timeout=30)


_server: _Server | None = None


def _forkable(args: list[str]) -> dict | None:
  """How the server runs `args` (`kind`: module, code or script; `target`; `argv`): `python -m
  MODULE ...`, `python -c CODE ...`, `python SCRIPT ...` or a script of this Python (a console
  script). None for anything else, and for a run that picks Keras' backend itself (the server's
  Keras runs on TF)."""
  if any(arg.startswith("--backend") for arg in args):
    return None
  if args[0] != sys.executable:
    try:
      with open(args[0], "rb") as f:
        first = f.readline(1000)
    except OSError:
      return None
    interpreter = first[2:].strip().decode(errors="replace")
    if not first.startswith(b"#!") or not os.path.exists(interpreter) or not os.path.samefile(
        interpreter, sys.executable):
      return None
    return {"kind": "script", "target": args[0], "argv": args}
  if len(args) > 2 and args[1] == "-m":
    return {"kind": "module", "target": args[2], "argv": [args[2], *args[3:]]}
  if len(args) > 2 and args[1] == "-c":
    return {"kind": "code", "target": args[2], "argv": ["-c", *args[3:]]}
  if len(args) > 1 and not args[1].startswith("-"):
    return {"kind": "script", "target": args[1], "argv": args[1:]}
  return None


def _text(data: bytes) -> str:
  # As subprocess's text mode decodes: the locale's encoding, universal newlines.
  return io.TextIOWrapper(io.BytesIO(data)).read()


def run(args, *, cwd=None, env=None, timeout=None, input=None, umask=None):
  """`subprocess.run(args, capture_output=True, text=True, ...)`, forked from the worker's server
  when `_forkable(args)` and `env` loads the libraries as the server's did."""
  global _server
  args = [str(arg) for arg in args]
  env = dict(os.environ if env is None else env)
  target = _forkable(args) if os.environ.get("FGRN_TEST_FORK", "1") != "0" else None
  if _server is None and target is not None:
    _server = _Server()
    atexit.register(_server.close)
  if (target is None or _read_at_import(env) != _server.env
      or _server.proc.poll() is not None):
    return subprocess.run(args, cwd=cwd, env=env, timeout=timeout, input=input,
                          capture_output=True, text=True,
                          **({} if umask is None else {"umask": umask}))
  with tempfile.TemporaryDirectory() as folder:
    paths = {name: os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")}
    for path in paths.values():
      pathlib.Path(path).write_bytes(b"")
    if input is not None:
      pathlib.Path(paths["stdin"]).write_text(input)
    status, killed = _server.ask(
        {**paths, **target, "env": env, "umask": umask,
         "cwd": os.path.abspath(cwd or os.getcwd())}, timeout)
    stdout, stderr = (_text(pathlib.Path(paths[name]).read_bytes())
                      for name in ("stdout", "stderr"))
  if killed:
    raise subprocess.TimeoutExpired(args, timeout, output=stdout, stderr=stderr)
  return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(status), stdout, stderr)
