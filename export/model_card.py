"""Writes MODEL_CARD.md for a shipped model from its files and `eval_main.py` results.

  python export/model_card.py --model models/fgrn_x2 \
      --eval keras=results/x2,tflite_float16=results/x2_fp16,tflite_int8=results/x2_int8

Each `--eval` entry is `label=folder`, a folder written by `eval_main.py` (its results.json) on
the model as shipped (Keras), or on one of its TFLite exports; the bicubic rows come from the
first entry evaluated with `--method fgrn,bicubic`. Numbers are copied, never retyped.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

# What the paper reports for its FGRN, Set5 / Set14 PSNR (dB) / SSIM (Table 1; DIV2K+Flickr2K,
# 5e5 steps at batch 36 of 192x192 on GPUs).
PAPER = {2: {"Set5": (44.15, 0.9902), "Set14": (42.28, 0.9840)},
         4: {"Set5": (36.97, 0.9505), "Set14": (33.77, 0.9168)}}


def _num(v) -> float:
  return math.inf if v == "inf" else float(v)


def _f(v, digits: int) -> str:
  v = _num(v)
  return "inf" if math.isinf(v) else f"{v:.{digits}f}"


def _mb(path: pathlib.Path) -> str:
  files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
  return f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB"


def card(model: pathlib.Path, evals: list[tuple[str, dict]], commands: list[str]) -> str:
  cfg = json.loads((model / "config.json").read_text())
  state = json.loads((model / "train_state.json").read_text())
  m, t = cfg["model"], cfg["train"]
  scale = m["scale"]
  sets = list(evals[0][1]["datasets"])
  hours = state.get("train_seconds", 0) / 3600
  data = ", ".join(pathlib.Path(d).name for d in t["data_dirs"]) or "the built-in photos"
  done = state["step"] >= t["steps"]
  lines = [
      f"# FGRN x{scale}, trained on a CPU", "",
      f"FGRN (Li et al., BMVC 2021) x{scale} as the paper sizes it (width {m['width']}, "
      f"{m['down_blocks']} + {m['up_blocks']} ResBlocks, K = {m['flow_cells']} flow cells), "
      f"trained with this repository's `train_main.py` on a 2-core CPU. "
      + ("Training is complete." if done else
         f"**Training is not finished** ({state['step']} of {t['steps']} steps): these are the "
         "weights of the best validation so far, and the run continues in later sessions."), "",
      "## Training", "",
      "| | |", "|---|---|",
      f"| data | {data} ({t['val_images']} images held out for validation, centre crops of "
      f"{t['val_crop']}) |",
      f"| recipe | batch {t['batch_size']} of {t['patch_size']}x{t['patch_size']} HR patches, "
      f"random flips and 90-degree rotations, Adam {t['learning_rate']:g} halved every "
      f"{t['lr_halving_steps']} steps, seed {t['seed']} |",
      f"| steps | {state['step']} of {t['steps']} |",
      f"| training time | {hours:.2f} hours of wall time on 2 cores (at times shared with other "
      "jobs) |",
      f"| best validation | {state.get('best_val_psnr', float('nan')):.2f} dB RGB PSNR of the "
      f"8-bit round trip, at step {state.get('best_step', '?')} |",
      f"| weights | `best.weights.h5`, stored as float16 ({_mb(model / 'best.weights.h5')}); "
      "Keras loads them as float32 |",
      f"| TFLite | `export/tflite/float16/{{downscaler,upscaler}}.tflite` "
      f"({_mb(model / 'export' / 'tflite' / 'float16')}) |", "",
      "## Reconstruction: PSNR / SSIM of the HR round trip (Y, border = scale)", "",
      "| method | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
  bicubic = evals[0][1]["datasets"]
  if all("bicubic" in bicubic[s]["methods"] for s in sets):
    lines.append("| bicubic down + bicubic up | " + " | ".join(
        f"{_f(bicubic[s]['methods']['bicubic']['psnr'], 2)} / "
        f"{_f(bicubic[s]['methods']['bicubic']['ssim'], 4)}" for s in sets) + " |")
  for label, res in evals:
    lines.append(f"| FGRN ({label}) | " + " | ".join(
        f"{_f(res['datasets'][s]['methods']['fgrn']['psnr'], 2)} / "
        f"{_f(res['datasets'][s]['methods']['fgrn']['ssim'], 4)}" for s in sets) + " |")
  paper = PAPER.get(scale, {})
  if all(s in paper for s in sets):
    lines.append("| FGRN, the paper (GPUs, DIV2K+Flickr2K, 5e5 steps) | " + " | ".join(
        f"{paper[s][0]:.2f} / {paper[s][1]:.4f}" for s in sets) + " |")
  lines += ["", "## The LR images", "",
            "Y PSNR of the LR against MATLAB's bicubic LR (how close the visible image stays to "
            "a plain downscale), and PIQE of the LR (lower is better) beside the bicubic LR's.",
            "", "| | " + " | ".join(f"{s} LR PSNR | {s} PIQE" for s in sets) + " |",
            "|---|" + "---|---|" * len(sets)]
  for label, res in evals:
    ds = res["datasets"]
    lines.append(f"| FGRN ({label}) | " + " | ".join(
        f"{_f(ds[s]['methods']['fgrn']['lr_psnr'], 2)} | {_f(ds[s]['methods']['fgrn']['piqe'], 2)}"
        for s in sets) + " |")
  if all("bicubic" in bicubic[s]["methods"] for s in sets):
    lines.append("| bicubic LR | " + " | ".join(
        f"- | {_f(bicubic[s]['methods']['bicubic']['piqe'], 2)}" for s in sets) + " |")
  lines += ["", "## How these numbers were made", "", "```", *commands, "```", "",
            "## Limits", "",
            f"- A few CPU-hours on {data} against the paper's GPU-days on DIV2K+Flickr2K: expect "
            "the gap to the paper's row above.",
            "- Set5 and Set14 were never seen in training or validation."]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", required=True, type=pathlib.Path)
  parser.add_argument("--eval", required=True,
                      help="label=folder,... of eval_main.py output folders")
  parser.add_argument("--commands", default="",
                      help="a file with the commands that made the numbers (copied verbatim)")
  args = parser.parse_args(argv)
  try:
    evals = []
    for item in args.eval.split(","):
      label, _, folder = item.partition("=")
      evals.append((label, json.loads((pathlib.Path(folder) / "results.json").read_text())))
    commands = (pathlib.Path(args.commands).read_text().strip().splitlines()
                if args.commands else [])
    text = card(args.model, evals, commands)
  except (OSError, ValueError, KeyError) as e:
    print(f"model_card: error: {e}", file=sys.stderr)
    return 1
  (args.model / "MODEL_CARD.md").write_text(text)
  print(f"wrote {args.model / 'MODEL_CARD.md'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
