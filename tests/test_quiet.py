"""Entry points print only their own lines: tf_env filters the libraries' log lines out of stderr.

The entry points run as subprocesses with TF's oneDNN kernels forced on (TF then prints its
"oneDNN custom operations are on" lines on any CPU, as it does by default with AVX-512) and off.
"""

import concurrent.futures
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import ROOT

from fgrn_tf import tf_env

PYTHON = sys.executable
ONEDNN = ("1", "0")
# What the libraries would print here: the checks below fail if any of it gets through.
LIBRARY_TEXT = re.compile(r"oneDNN|absl::InitializeLog|libpng|\[ WARN|XNNPACK|^[IWE]\d{4} ",
                          re.M)


def _env(**changes):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  # What tf_env sets in this process (conftest) must come from each entry point itself.
  for key in ("FGRN_VERBOSE", "TF_CPP_MIN_LOG_LEVEL", "OPENCV_LOG_LEVEL"):
    env.pop(key, None)
  return {**env, **changes}


# ---- the line classifier ----------------------------------------------------------------------

NOISE = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796173269.633567    6290 port.cc:153] oneDNN custom operations are on. You "
    b"may see slightly different numerical results.",
    b"E0000 00:00:1796173301.723846    6597 util.cc:131] oneDNN supports DT_UINT8 only on "
    b"platforms with AVX-512. Falling back to the default Eigen-based implementation if present.",
    b"W1202 01:07:06.805530 139722613328768 cpu_feature_guard.cc:210] some warning\n",
    b"2023-05-01 12:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:182] old TF",
    b"[ WARN:0@0.024] global grfmt_png.cpp:793 readFromStreamOrBuffer PNG input buffer is "
    b"incomplete",
    b"[ INFO:0@0.101] global plugin_loader.impl.hpp:67 loadFromFile load libopencv_core.so",
    b"libpng error: Not enough image data",
    b"libpng warning: iCCP: known incorrect sRGB profile",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"INFO: Initialized TensorFlow Lite runtime.",
    b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, "
    b"output_inference_type: FLOAT32",
]
KEPT = [
    b"F0000 00:00:1796173301.723846    6597 tensor.cc:42] Check failed: dims() == 4 (3 vs. 4)",
    b"Fatal Python error: Segmentation fault",
    b"Traceback (most recent call last):",
    b"W1202 01:07:06.805530 139722613328768 pipeline.py:136] skipping unreadable training file",
    b"export: error: /tmp/wd/best.weights.h5: not a Keras weights file",
    b"error: in/trunc.png: not a readable image (corrupt, truncated or unknown format)",
    b"WARNING: a TFLite warning nobody has looked at yet",
    b"[ERROR:0@0.024] global persistence.cpp:505 open Can't open file",
    b"terminate called after throwing an instance of 'std::bad_alloc'",
    b"",
]


@pytest.mark.parametrize("line", NOISE, ids=range(len(NOISE)))
def test_known_library_lines_are_noise(line):
  assert tf_env.is_noise(line)


@pytest.mark.parametrize("line", KEPT, ids=range(len(KEPT)))
def test_fatal_our_own_and_unknown_lines_are_kept(line):
  assert not tf_env.is_noise(line)


# ---- the filter, in a process that does not import TF ----------------------------------------

FILTER_SCRIPT = """
import os, sys
from fgrn_tf import tf_env
tf_env.set_defaults()
first = tf_env._filter
tf_env.set_defaults()
assert tf_env._filter is first, "installed twice"
os.write(2, b"I0000 00:00:1796173269.633567    6290 port.cc:153] oneDNN custom operations\\n")
os.write(2, b"kept line\\n")
print("python line", file=sys.stderr)
os.write(2, b"libpng error: Not enough image data\\nF0000 00:00:1.0  1 t.cc:1] Check failed\\n")
if sys.argv[1] == "abort":
  os.abort()
if sys.argv[1] == "show":
  tf_env.show_third_party_logs()
  os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
os.write(2, b"no newline at the end")
"""


def _filtered(mode, **env):
  return subprocess.run([PYTHON, "-c", FILTER_SCRIPT, mode], cwd=ROOT, env=_env(**env),
                        capture_output=True, timeout=60)


def test_filter_drops_noise_and_passes_the_rest_even_when_the_process_aborts():
  for mode in ("exit", "abort"):
    proc = _filtered(mode)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == (0 if mode == "exit" else -6), proc.stderr
    assert sorted(lines) == sorted(
        ["kept line", "python line", "F0000 00:00:1.0  1 t.cc:1] Check failed"]
        + (["no newline at the end"] if mode == "exit" else [])), proc.stderr


def test_filter_is_off_with_fgrn_verbose_and_after_show_third_party_logs():
  verbose = _filtered("exit", FGRN_VERBOSE="1").stderr.decode()
  assert "oneDNN custom operations" in verbose and "libpng error" in verbose
  shown = _filtered("show").stderr.decode()
  assert "XNNPACK" in shown and "oneDNN" not in shown and "libpng" not in shown


def test_filter_leaves_a_captured_or_fileless_stderr_alone(monkeypatch):
  monkeypatch.setattr(tf_env, "_filter", None)
  monkeypatch.delenv("FGRN_VERBOSE", raising=False)
  monkeypatch.setattr(sys, "stderr", io.StringIO())  # pytest's capture, a caller's redirect
  assert not tf_env.quiet_third_party_logs()
  monkeypatch.setattr(sys, "__stderr__", sys.stderr)  # the same, but with no fd at all
  assert not tf_env.quiet_third_party_logs()
  monkeypatch.setattr(sys, "stderr", None)  # python run with stderr closed
  monkeypatch.setattr(sys, "__stderr__", None)
  assert not tf_env.quiet_third_party_logs()
  assert tf_env._filter is None


# ---- the entry points -------------------------------------------------------------------------

def _png_bytes(h, w, seed=0):
  import cv2

  image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
  return cv2.imencode(".png", image)[1].tobytes()


def _short_idat_png(data: bytes) -> bytes:
  """`data` with half its pixel data: libpng says "Not enough image data" (not a cut file)."""
  def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

  pos, chunks = 8, []
  while pos < len(data):
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
    pos += 12 + n
  raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
  half = zlib.compress(raw[:len(raw) // 2])
  return data[:8] + chunk(b"IHDR", chunks[0][1]) + chunk(b"IDAT", half) + chunk(b"IEND", b"")


def uses(*commands):
  """Names the entry point runs a test reads, so that only those are started."""
  def mark(test):
    test.commands = commands
    return test
  return mark


@pytest.fixture(scope="module")
def runs(tmp_path_factory, request):
  """Starts, two at a time, the entry point runs the selected tests read: {key: Future}."""
  import h5py

  from fgrn_tf import config, workdir

  base = tmp_path_factory.mktemp("quiet")
  images = base / "images"  # one good image and three that OpenCV and libpng complain about
  images.mkdir()
  good = _png_bytes(40, 48)
  (images / "good.png").write_bytes(good)
  (images / "cut_end.png").write_bytes(good[:-12])  # libpng error: input buffer is incomplete
  (images / "cut_half.png").write_bytes(good[:len(good) // 2])  # OpenCV's [ WARN:...]
  (images / "short_idat.png").write_bytes(_short_idat_png(good))  # libpng: not enough data
  # Weights in an HDF5 file without any: they get past the checks made before TF is imported.
  empty_hdf5 = base / "empty_hdf5"
  workdir.write_experiment(empty_hdf5, config.smoke())
  h5py.File(empty_hdf5 / workdir.BEST_WEIGHTS, "w").close()

  def commands(key):
    name, onednn = key.split(":")
    out = base / key.replace(":", "_")
    env = (_env(FGRN_VERBOSE="1", TF_ENABLE_ONEDNN_OPTS="1") if onednn == "verbose"
           else _env(TF_ENABLE_ONEDNN_OPTS=onednn))
    argv = {
        "info": ["-m", "fgrn_tf", "info", "--scale", "2", "--json"],
        "export": ["export/export_main.py", "--workdir", empty_hdf5, "--output_dir", out],
        "eval": ["eval_main.py", "--model", empty_hdf5, "--datasets", images,
                 "--output_dir", out],
        "train": ["train_main.py", "--preset", "smoke", "--scale", "1", "--workdir", out],
        "ship": ["export/ship_main.py", "--workdir", empty_hdf5, "--dest", out,
                 "--check_dir", images],
        "roundtrip": ["-m", "fgrn_tf", "roundtrip", images, "--model", base / "smoke", "-o", out],
    }[name]
    return [PYTHON, *map(str, argv)], env

  wanted = []
  for item in request.session.items:
    onednn = item.callspec.params.get("onednn") if hasattr(item, "callspec") else None
    for name in getattr(getattr(item, "function", None), "commands", ()):
      key = name if ":" in name else f"{name}:{onednn}"
      if key not in wanted:
        wanted.append(key)

  def run(key):
    argv, env = commands(key)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

  # Two at a time: the CI machine has 2 cores, and each run spends seconds importing TF.
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
  futures = {key: pool.submit(run, key) for key in wanted if not key.startswith("roundtrip")}
  if any(key.startswith("roundtrip") for key in wanted):  # built while the others run
    from helpers import tiny_model

    workdir.write_experiment(base / "smoke", config.smoke())
    tiny_model(seed=2).save_weights(base / "smoke" / workdir.BEST_WEIGHTS)
    futures.update({key: pool.submit(run, key) for key in wanted if key.startswith("roundtrip")})
  yield {key: future.result for key, future in futures.items()}
  pool.shutdown(wait=True, cancel_futures=True)


def _stderr_lines(proc):
  return proc.stderr.strip().splitlines()


@pytest.mark.parametrize("onednn", ONEDNN)
@uses("info")
def test_info_prints_its_json_and_nothing_on_stderr(runs, onednn):
  proc = runs[f"info:{onednn}"]()
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stderr == ""
  assert json.loads(proc.stdout)["total"] > 0  # stdout is the one JSON object, nothing else


@pytest.mark.parametrize("onednn", ONEDNN)
@uses("export", "eval", "train")
def test_export_eval_and_train_fail_with_their_one_error_line(runs, onednn):
  for name, prefix in (("export", "export: error:"), ("eval", "eval_main.py: error:"),
                       ("train", "train_main.py: error:")):
    proc = runs[f"{name}:{onednn}"]()
    lines = _stderr_lines(proc)
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith(prefix), (name, proc.stderr[-2000:])
    assert proc.stdout == "", name


@pytest.mark.parametrize("onednn", ONEDNN)
@uses("ship")
def test_ship_shows_its_own_lines_about_corrupt_images_and_weights(runs, onednn):
  proc = runs[f"ship:{onednn}"]()
  lines = _stderr_lines(proc)
  assert proc.returncode != 0
  assert len(lines) == 1 and lines[0].startswith("ship: error:"), proc.stderr[-3000:]
  assert not LIBRARY_TEXT.search(proc.stdout), proc.stdout[-3000:]
  assert all(line.startswith("ship: ") for line in proc.stdout.splitlines()), proc.stdout
  assert proc.stdout.count("skipping check image") == 3


@pytest.mark.parametrize("onednn", ONEDNN)
@uses("roundtrip")
def test_roundtrip_reports_truncated_pngs_without_opencv_or_libpng_lines(runs, onednn):
  proc = runs[f"roundtrip:{onednn}"]()
  assert proc.returncode == 1, proc.stderr[-3000:]  # some inputs failed
  assert not LIBRARY_TEXT.search(proc.stderr + proc.stdout), proc.stderr[-3000:]
  lines = _stderr_lines(proc)
  ours = re.compile(r"\[\d+/\d+\] |error: .*: not a readable image|roundtrip: 1 done, 3 failed")
  assert all(ours.match(line) for line in lines), proc.stderr[-3000:]
  assert sum(line.startswith("error: ") for line in lines) == 3
  assert "good.png  PSNR" in proc.stdout


@uses("ship:verbose")
def test_fgrn_verbose_shows_the_library_lines_the_checks_look_for(runs):
  proc = runs["ship:verbose"]()
  for text in ("oneDNN custom operations are on", "absl::InitializeLog", "libpng error:",
               "[ WARN:"):
    assert text in proc.stderr, (text, proc.stderr[-3000:])


# ---- Python loggers behind absl's handler ------------------------------------------------------

_FIRST_FIGURE = """
import sys
from absl import app, logging
from fgrn_tf import tf_env
if sys.argv[1] == "quiet":
  tf_env.set_defaults()
def main(argv):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  plt.figure()
app.run(main, argv=sys.argv[:1])
"""


def test_matplotlib_first_run_line_is_kept_out(tmp_path):
  # An empty MPLCONFIGDIR is a machine's first figure: matplotlib builds its font cache and logs
  # "generated new fontManager" at INFO, which absl's handler (installed by app.run) prints.
  def run(mode, folder):
    env = _env(MPLCONFIGDIR=str(tmp_path / folder), FGRN_VERBOSE="")
    return subprocess.run([PYTHON, "-c", _FIRST_FIGURE, mode], env=env, capture_output=True,
                          text=True, timeout=300)
  loud = run("loud", "a")
  assert loud.returncode == 0, loud.stderr[-2000:]
  assert "fontManager" in loud.stderr  # what the defaults must keep out
  quiet = run("quiet", "b")
  assert quiet.returncode == 0, quiet.stderr[-2000:]
  assert "fontManager" not in quiet.stderr, quiet.stderr[-2000:]


# ---- optional imports of TF and Keras -----------------------------------------------------------

def test_optional_imports_fail_for_their_importers_alone(tmp_path, monkeypatch):
  (tmp_path / "fgrn_probe_pkg.py").write_text("VALUE = 1\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setitem(tf_env.OPTIONAL_IMPORTS, "fgrn_probe_pkg", ("probe.importer",))
  monkeypatch.delitem(sys.modules, "fgrn_probe_pkg", raising=False)
  tf_env.skip_optional_imports()
  tf_env.skip_optional_imports()  # installed once
  assert sum(isinstance(f, tf_env._SkipOptionalImports) for f in sys.meta_path) == 1
  code = "try:\n  import fgrn_probe_pkg\nexcept ImportError:\n  fgrn_probe_pkg = None\n"
  listed, other = {"__name__": "probe.importer"}, {"__name__": "anyone.else"}
  exec(code, listed)
  assert listed["fgrn_probe_pkg"] is None
  exec(code, other)
  assert other["fgrn_probe_pkg"].VALUE == 1
  exec(code, listed)  # loaded now: the importer gets it too
  assert listed["fgrn_probe_pkg"] is other["fgrn_probe_pkg"]


_STARTUP = """
import json, sys
from fgrn_tf import tf_env
tf_env.set_defaults()
import keras
from fgrn_tf.models import fgrn
loaded = [name for name in ("jax", "matplotlib") if name in sys.modules]
import jax, matplotlib.pyplot  # whoever asks for them later gets them
print(json.dumps({"tf": "tensorflow" in sys.modules, "loaded": loaded}))
"""


def test_a_tool_loads_tensorflow_without_jax_or_matplotlib_yet_can_use_both():
  proc = subprocess.run([PYTHON, "-c", _STARTUP], env=_env(), capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout) == {"tf": True, "loaded": []}
