"""The benchmark scripts run: `bench/run_all.py --quick` writes a report, a CSV and plots."""

import csv
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import forked_tools
import pytest

from bench import report, run_all

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_run_writes_report_csv_and_plots(tmp_path):
  report = tmp_path / "BENCHMARKS.md"
  root_report = ROOT / "BENCHMARKS.md"
  before = root_report.stat().st_mtime_ns if root_report.exists() else None
  proc = forked_tools.run(
      [sys.executable, "-m", "bench.run_all", "--quick", "--results_dir",
       str(tmp_path / "results"), "--report", str(report),
       "--skip", "train_throughput,export_latency,memory_vs_size,rate_distortion,serving"],
      cwd=ROOT, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

  text = report.read_text()
  for heading in ("# FGRN-TF benchmarks", "## Machine", "## Inference latency",
                  "## Training step", "## Training step at the paper's batch",
                  "## FLOPs and the machine's limit",
                  "## Where the time goes"):
    assert heading in text, heading
  import tensorflow as tf

  assert tf.__version__ in text
  assert "| section | measured | load before | after |" in text
  assert "| CPU | flags | TF oneDNN |" in text and "GFLOP/s |" in text  # the run's own peak
  assert "| latency | 20" in text and "an earlier run" not in text
  assert "Skipped in this run." in text  # the other scripts' sections, skipped here
  assert "fails" not in text and "error" not in text.lower(), text

  with (tmp_path / "results" / "results.csv").open() as f:
    rows = list(csv.DictReader(f))
  latency = {(r["scale"], r["threads"], r["case"]) for r in rows if r["section"] == "latency"}
  for threads in ("1", "2"):
    for case in ("downscale 128x128", "upscale 128x128", "roundtrip 128x128"):
      assert ("2", threads, case) in latency
  modes = {r["case"].split()[0] for r in rows
           if r["section"] == "train_modes" and r["metric"] == "steps_per_s"}
  assert modes == {"default", "xla", "mirrored"}
  assert any(r["case"] == "default b3 48x48" for r in rows if r["section"] == "train_modes")
  assert all(float(r["median"]) > 0 for r in rows if r["metric"] in ("seconds", "steps_per_s"))
  assert any(r["section"] == "flops" and r["metric"] == "fraction_of_peak" for r in rows)
  assert any(r["section"] == "profile" for r in rows)

  for name in ("latency.png", "train_modes.png", "flops.png", "profile.png"):
    data = (tmp_path / "results" / name).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert f"({name}" in text or f"/{name})" in text, f"{name} not linked from the report"
  after = root_report.stat().st_mtime_ns if root_report.exists() else None
  assert after == before, "a quick run must not replace the repository's BENCHMARKS.md"


FAKE_SCRIPT = """
import argparse, json, pathlib, sys
parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--json_out")
args = parser.parse_args()
print("| scale | steps/s |")
print("|---|---|")
print(f"| 2 | {'0.1' if args.quick else '9.9'} |")
pathlib.Path(args.json_out).write_text(json.dumps({"rows": [{"quick": args.quick}]}))
sys.exit(CODE)
"""


@pytest.mark.parametrize("code, status", [(0, "ok"), (3, "exit code 3")])
def test_other_bench_script_runs_with_quick_and_json_flags(tmp_path, code, status):
  bench_dir = tmp_path / "bench"
  bench_dir.mkdir()
  (bench_dir / "train_throughput.py").write_text(
      textwrap.dedent(FAKE_SCRIPT).replace("CODE", str(code)))
  plan = run_all.Plan.make(quick=True)
  result = run_all.run_external("train_throughput", plan, tmp_path / "out", bench_dir=bench_dir)
  assert result["status"] == status
  assert result["json"] == {"rows": [{"quick": True}]}
  section = "\n".join(report.external_section("train_throughput", "Training", result))
  assert "| 2 | 0.1 |" in section
  assert ("Did not finish" in section) == (code != 0)
  assert (tmp_path / "out" / "logs" / "train_throughput.log").exists()


def test_a_missing_bench_script_fails_its_section_like_any_failure(tmp_path):
  plan = run_all.Plan.make(quick=True)
  result = run_all.run_external("memory_vs_size", plan, tmp_path / "out", bench_dir=tmp_path)
  assert result["status"] == "exit code 2" and result["json"] is None
  section = "\n".join(report.external_section("memory_vs_size", "Memory", result))
  assert "**Did not finish: exit code 2**" in section and "memory_vs_size.py" in section


def test_run_all_passes_the_other_scripts_only_flags_they_declare():
  for name, _ in report.EXTERNAL:
    text = (ROOT / "bench" / f"{name}.py").read_text()
    declared = set(re.findall(r"add_argument\(\s*['\"](--\w+)", text))
    passed = {"--quick", *([run_all.JSON_FLAGS[name]] if name in run_all.JSON_FLAGS else []),
              *([run_all.OUTPUT_DIR_FLAGS[name]] if name in run_all.OUTPUT_DIR_FLAGS else [])}
    assert passed <= declared, name


def test_analytic_flops_match_tf_profiler():
  import tensorflow as tf

  from bench import common, flops
  from fgrn_tf.models.fgrn import FGRN

  model = FGRN(common.bench_model_config(2, quick=True).replace(flow_cells=2))
  ops = flops.op_flops(model, 64)
  spec = tf.TensorSpec([1, 64, 64, 3], tf.float32)
  counted = flops.profiler_flops(model.downscale_float, spec)
  # The profiler adds element-wise ops (biases, activations): a few percent in a tiny network.
  assert ops["downscale"] <= counted <= 1.1 * ops["downscale"]
  modules = flops.module_flops(model, 64)
  assert ops["roundtrip"] == pytest.approx(modules["Gd"] + 2 * modules["F"] + modules["Gu"])


def test_reuse_takes_sections_from_the_earlier_results_and_rejects_a_mismatch(tmp_path):
  from bench import common

  here = common.machine_info()
  path = tmp_path / "results.json"
  path.write_text(json.dumps({"quick": False, "machine": here, "latency": {"rows": [1]},
                              "flops": {"rows": []}}))
  assert run_all.load_sections(path, {"latency"}, quick=False) == {"latency": {"rows": [1]}}
  stamp = {"date": "2026-01-02 03:04 UTC", "load_before": [2.5, 1, 1], "load_after": None}
  path.write_text(json.dumps({"quick": False, "machine": here, "latency": {"rows": [1]},
                              "flops": {"rows": []},
                              "ran": {"latency": stamp, "flops": {"date": "x"}}}))
  assert run_all.load_sections(path, {"latency"}, quick=False) == {
      "latency": {"rows": [1]}, "ran": {"latency": stamp}}
  assert run_all.load_sections(tmp_path / "none.json", set(), quick=False) == {}
  with pytest.raises(ValueError, match="no profile"):
    run_all.load_sections(path, {"latency", "profile"}, quick=False)
  with pytest.raises(ValueError, match="full run"):
    run_all.load_sections(path, {"latency"}, quick=True)
  with pytest.raises(ValueError, match="earlier"):
    run_all.load_sections(tmp_path / "none.json", {"latency"}, quick=False)
  # Figures from another CPU (or this one with other kernels) never join this run's report.
  for other in ({**here, "cpu_flags": ["avx2"]}, {**here, "onednn": not here.get("onednn")},
                {k: v for k, v in here.items() if k != "cpu_flags"}):
    path.write_text(json.dumps({"quick": False, "machine": other, "latency": {"rows": [1]}}))
    with pytest.raises(ValueError, match="another machine"):
      run_all.load_sections(path, {"latency"}, quick=False)


def test_report_names_the_cpu_its_flags_onednn_and_the_peak_of_the_same_run():
  info = {"cpu": "Some CPU", "cpu_flags": ["avx2", "avx512f"], "onednn": True,
          "tf_enable_onednn_opts": "unset", "logical_cores": 2, "usable_cores": 2,
          "python": "3.11"}
  row = report.machine_table({"machine": info, "flops": {"peak": {"gflops": 123.45}}})[-1]
  assert "Some CPU" in row and "avx2 avx512f" in row and "| on |" in row
  assert "123.5 GFLOP/s" in row
  row = report.machine_table({"machine": {**info, "onednn": False,
                                           "tf_enable_onednn_opts": "0"}})[-1]
  assert "off (TF_ENABLE_ONEDNN_OPTS=0)" in row and "not measured" in row


def test_irn_comparison_keeps_both_columns_from_one_machine():
  from bench import common

  text = "\n".join(report.comparison_table())
  assert common.IRN_SIDE_BY_SIDE["machine"] in text
  for what, _, irn, ours, _ in common.IRN_SIDE_BY_SIDE["rows"]:
    assert what in text and " / ".join(map(str, irn)) in text and " / ".join(map(str, ours)) in text


def test_report_says_when_each_section_was_measured():
  stamp = {"date": "2026-01-02 03:04 UTC", "load_before": [2.5, 1.0, 1.0], "load_after": None}
  lines = report.ran_table({"latency": {}, "flops": {}, "ran": {"latency": stamp}})
  assert "| latency | 2026-01-02 03:04 UTC | 2.50 / 1.00 / 1.00 | ? |" in lines
  assert "| flops | an earlier run | ? | ? |" in lines
  assert not any("profile" in line for line in lines)


def test_memory_prediction_extrapolates_the_two_largest_sizes():
  from bench import memory_vs_size

  assert memory_vs_size.predicted_mib([(1, 1000.0)], 64) is None
  points = [(4, 2000.0), (0.25, 50.0), (1, 800.0)]  # 400 MiB per megapixel above 1 MP
  assert memory_vs_size.predicted_mib(points, 16) == pytest.approx(2000 + 12 * 400)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine runs it")
def test_gpu_check_fails_in_one_line_where_there_is_no_gpu(tmp_path):
  run = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, VENV=str(tmp_path / "venv")))
  assert run.returncode == 1
  assert run.stderr.splitlines() == [
      "gpu_check: error: no NVIDIA GPU here (nvidia-smi is missing or lists none)"]
  assert not (tmp_path / "venv").exists()  # nothing installed before the check


def test_gpu_train_measures_each_precision_and_refuses_a_machine_without_gpus():
  base = [sys.executable, "-m", "bench.gpu_train", "--batch", "4", "--patch", "32", "--steps",
          "2", "--warmup", "1", "--quick"]
  run = forked_tools.run([*base, "--allow_cpu"], cwd=ROOT, timeout=600)
  assert run.returncode == 0, run.stderr
  rows = [line for line in run.stdout.splitlines() if line.startswith("| mixed_float16 |")
          or line.startswith("| float32 |")]
  assert len(rows) == 2
  assert all(float(row.split("|")[6]) > 0 for row in rows)  # a finite loss at the end
  import tensorflow as tf

  if tf.config.list_physical_devices("GPU"):
    return  # the refusal is for machines without one
  run = forked_tools.run(base, cwd=ROOT, timeout=600)
  assert run.returncode == 1
  assert run.stderr.strip().splitlines()[-1].startswith("gpu_train: error: TensorFlow")


def test_the_onednn_variant_runs_only_where_tf_leaves_onednn_off(monkeypatch):
  from bench import common

  plan = run_all.Plan.make(quick=True)
  for default, wanted in ((False, True), (True, False), (None, False)):
    monkeypatch.setattr(common, "onednn_enabled", lambda env=None, d=default: d)
    assert run_all.onednn_variant_needed(plan) is wanted
  monkeypatch.setattr(common, "onednn_enabled", lambda env=None: False)
  assert not run_all.onednn_variant_needed(run_all.dataclasses.replace(plan, onednn_sizes=()))


def test_the_onednn_answer_is_asked_of_tf_once_per_setting(monkeypatch):
  from bench import common

  asked = []
  monkeypatch.setattr(common, "_ONEDNN_ANSWERS", {})
  monkeypatch.setattr(common, "_ask_onednn", lambda env: asked.append(env) or True)
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
  assert common.onednn_enabled() and common.onednn_enabled()
  assert common.onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "0"})
  assert len(asked) == 2


def test_a_process_with_tf_loaded_answers_the_onednn_question_itself(monkeypatch):
  import tensorflow  # noqa: F401  (loaded, as in a benchmark that has measured already)
  from tensorflow.python.util import _pywrap_util_port

  from bench import common

  fresh = []
  monkeypatch.setattr(common, "_ONEDNN_ANSWERS", {})
  monkeypatch.setattr(common.subprocess, "run", lambda args, env, **kwargs: fresh.append(
      env["TF_ENABLE_ONEDNN_OPTS"]) or subprocess.CompletedProcess(args, 0, "1\n", ""))
  assert common.onednn_enabled() is bool(_pywrap_util_port.IsMklEnabled())
  assert fresh == []
  other = "0" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0" else "1"
  assert common.onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": other}) is True
  assert fresh == [other]  # another setting: TF here decided under this process's
