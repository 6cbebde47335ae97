"""oneDNN kernels on and off on this CPU: x2/x4 512x512 round trip and training steps/s.

TF turns its oneDNN kernels on by itself on CPUs with AVX-512 and leaves them off elsewhere;
which is faster depends on the CPU, so the project keeps TF's choice and this script checks it
on the machine at hand. Each setting runs in a fresh process (TF reads TF_ENABLE_ONEDNN_OPTS
once, at start-up), and the settings alternate for `--rounds` rounds so that a change in the
machine's load shows as spread instead of as a difference between settings.

  .venv/bin/python -m studies.onednn               # paper-sized x2 and x4, 2 rounds (~10 min)
  .venv/bin/python -m studies.onednn --quick       # tiny networks: checks the code
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import tempfile

from bench import common
from fgrn_tf import files

SETTINGS = {"on": "1", "off": "0"}


def worker_args(kind: str, scales: str, quick: bool) -> list[str]:
  if kind == "latency":
    args = ["--threads", "2", "--scales", scales, "--sizes", "64" if quick else "512",
            "--runs", "3"]
  else:
    args = ["--modes", "default", "--scales", scales, "--batch", "4",
            "--patch", "32" if quick else "96", "--steps", "3" if quick else "8"]
  return [*args, *(["--quick"] if quick else [])]


def measure(scales: str, rounds: int, quick: bool) -> dict:
  """`{setting: {(kind, scale): [figure per round]}}`: round-trip seconds, training steps/s."""
  figures = {name: {} for name in SETTINGS}
  with tempfile.TemporaryDirectory(prefix="onednn.") as tmp:
    for r in range(rounds):
      for name, value in SETTINGS.items():
        for kind, script in (("latency", "keras_latency.py"), ("train", "train_modes.py")):
          out = pathlib.Path(tmp) / f"{kind}_{name}_{r}.json"
          result, why, _ = common.run_json_script(
              common.BENCH_DIR / script, worker_args(kind, scales, quick), out, timeout=1800,
              tag=f"{kind} oneDNN {name} round {r + 1}", env={"TF_ENABLE_ONEDNN_OPTS": value})
          if result is None:
            raise RuntimeError(f"{script} with oneDNN {name} failed ({why})")
          for row in result["rows"]:
            if kind == "latency" and row["op"] == "roundtrip":
              figures[name].setdefault(("round trip (s)", row["scale"]), []).append(row["median"])
            elif kind == "train" and "steps_per_s" in row:
              figures[name].setdefault(("training (steps/s)", row["scale"]), []).append(
                  row["steps_per_s"])
  return figures


def report(figures: dict, info: dict, peak: dict) -> str:
  lines = [common.machine_line(info, peak["gflops"]), "",
           "| what | oneDNN on (rounds) | oneDNN off (rounds) | speed, on / off |",
           "|---|---|---|---|"]
  for key in sorted(figures["on"]):
    what, scale = key
    on, off = figures["on"][key], figures["off"].get(key, [])
    ratio = statistics.median(off) / statistics.median(on) if "(s)" in what else \
        statistics.median(on) / statistics.median(off)
    lines.append(f"| x{scale} {what} | {' / '.join(f'{v:.3f}' for v in on)} | "
                 f"{' / '.join(f'{v:.3f}' for v in off)} | {ratio:.2f}x |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = common.model_bench_parser(__doc__)
  parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per setting")
  args = parser.parse_args(argv)
  info = common.machine_info()
  # The peak in a fresh process with TF's default kernels, beside the figures it frames.
  code, text = common.run_script(common.BENCH_DIR / "flops.py",
                                 ["--peak_only", *(["--quick"] if args.quick else [])],
                                 timeout=600, tag="peak")
  peak_lines = [line for line in text.splitlines() if line.startswith("peak_gflops ")]
  if code != 0 or not peak_lines:
    print("error: the float32 peak could not be measured", file=sys.stderr)
    return 1
  peak = {"gflops": float(peak_lines[-1].split()[1])}
  try:
    figures = measure(args.scales, args.rounds, args.quick)
  except RuntimeError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  text = report(figures, info, peak)
  print(text)
  if args.json_out:
    files.write_json(args.json_out, {"machine": info, "peak": peak, "markdown": text,
                                     "figures": {k: {f"{w} x{s}": v for (w, s), v in d.items()}
                                                 for k, d in figures.items()}})
  return 0


if __name__ == "__main__":
  sys.exit(main())
