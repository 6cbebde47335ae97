"""MODEL_CARD.md of a shipped model, from its files and `fgrn-eval` results (never retyped).

Each evaluation is a folder written by `fgrn-eval` (its results.json) on the model as shipped
(Keras) or on one of its TFLite exports; the bicubic rows come from the first one evaluated with
`--method fgrn,bicubic`, the paper's row from `fgrn_tf.paper`. The tool is
`fgrn_tf.cli.model_card` (`export/model_card.py`).
"""

from __future__ import annotations

import json
import math
import pathlib

from fgrn_tf import config, files, paper
from fgrn_tf.config import ModelConfig
from fgrn_tf.errors import FGRNError, one_line
from fgrn_tf.export import lr_crops
from fgrn_tf.models.fgrn import FGRN
from fgrn_tf.runtime.shipped import CARD, CARD_DIR


def _num(v) -> float:
  return math.inf if v == "inf" else float(v)


def _f(v, digits: int) -> str:
  if v is None:  # a figure an older results.json does not hold (e.g. lr_psnr_rgb)
    return "-"
  v = _num(v)
  return "inf" if math.isinf(v) else f"{v:.{digits}f}"


def _mb(path: pathlib.Path) -> str:
  found = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
  return f"{sum(p.stat().st_size for p in found) / 1e6:.1f} MB"


def _paper_sized(m: dict) -> bool:
  try:
    ref = config.model_preset_for_scale(m["scale"])
  except config.ConfigError:
    return False
  return all(m[k] == getattr(ref, k) for k in ("width", "down_blocks", "up_blocks",
                                               "flow_cells", "flow_growth"))


def _parameters(m: dict) -> int:
  return FGRN(ModelConfig.from_dict(m)).count_params()


def _codec_line(o: config.Objective) -> str:
  if not o.codec_min_quality:
    return "It was trained for lossless (PNG) LRs. "
  return (f"It was trained for LRs stored as JPEG at quality {o.codec_min_quality}.."
          f"{o.codec_max_quality} (on {o.codec_prob:.0%} of the training examples; "
          "docs/codecs.md). ")


def card(model: pathlib.Path, evals: list[tuple[str, dict]], commands: list[str]) -> str:
  """The text of MODEL_CARD.md.

  Args:
    model: the shipped model's folder (config.json, train_state.json, weights, export/).
    evals: (label, results.json of `fgrn-eval`) per evaluated form of the model; the first
      gives the datasets and, if it holds them, the bicubic rows.
    commands: the commands that made the numbers, copied into the card.
  """
  cfg = json.loads((model / "config.json").read_text())
  state = json.loads((model / "train_state.json").read_text())
  m, t = cfg["model"], cfg["train"]
  objective = config.Objective.of(cfg.get("objective"), m)
  scale = m["scale"]
  sets = list(evals[0][1]["datasets"])
  hours = state.get("train_seconds", 0) / 3600
  data = ", ".join(pathlib.Path(d).name for d in t["data_dirs"]) or "the built-in photos"
  done = state["step"] >= t["steps"]
  sizes = (f"width {m['width']}, {m['down_blocks']} + {m['up_blocks']} ResBlocks, K = "
           f"{m['flow_cells']} flow cells of growth {m['flow_growth']}")
  paper_sized = _paper_sized(m)
  kind = "as the paper sizes it" if paper_sized else "phone-sized"
  lines = [
      f"# FGRN x{scale}{'' if paper_sized else ' (phone-sized)'}, trained on a CPU", "",
      f"FGRN (Li et al., BMVC 2021) x{scale} {kind} ({sizes}; "
      f"{_parameters(m):,} parameters), "
      f"trained with this repository's `train_main.py` on a 2-core CPU. "
      + _codec_line(objective)
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
      *_start_rows(t, scale),
      f"| steps | {state['step']} of {t['steps']} |",
      f"| training time | {hours:.2f} hours of wall time on 2 cores (at times shared with other "
      "jobs) |",
      f"| best validation | {state.get('best_val_psnr', float('nan')):.2f} dB RGB PSNR of the "
      f"8-bit round trip, at step {state.get('best_step', '?')} |",
      f"| weights | `best.weights.h5`, stored as float16 ({_mb(model / 'best.weights.h5')}); "
      "Keras loads them as float32 |",
      *_tflite_rows(model),
      "",
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
  figures = paper.PSNR_SSIM.get(("fgrn", scale), {})
  if all(s in figures for s in sets):
    lines.append(f"| FGRN, the paper ({paper.SETUP}) | " + " | ".join(
        f"{figures[s][0]:.2f} / {figures[s][1]:.4f}" for s in sets) + " |")
  lines += _codec_rows(evals[0][1], sets, objective)
  lines += ["", "## The LR images", "",
            "PSNR of the LR against MATLAB's bicubic LR, Y / RGB (how close the visible image "
            "stays to a plain downscale; RGB also counts the colour speckle that Y hides), and "
            "PIQE of the LR (lower is better) beside the bicubic LR's.",
            "", "| | " + " | ".join(f"{s} LR PSNR Y / RGB | {s} PIQE" for s in sets) + " |",
            "|---|" + "---|---|" * len(sets)]
  for label, res in evals:
    ds = res["datasets"]
    lines.append(f"| FGRN ({label}) | " + " | ".join(
        f"{_f(ds[s]['methods']['fgrn']['lr_psnr'], 2)} / "
        f"{_f(ds[s]['methods']['fgrn'].get('lr_psnr_rgb'), 2)} | "
        f"{_f(ds[s]['methods']['fgrn']['piqe'], 2)}" for s in sets) + " |")
  if all("bicubic" in bicubic[s]["methods"] for s in sets):
    lines.append("| bicubic LR | " + " | ".join(
        f"- | {_f(bicubic[s]['methods']['bicubic']['piqe'], 2)}" for s in sets) + " |")
  lines += _crop_lines(model, sets)
  lines += ["", "## How these numbers were made", "", "```", *commands, "```", "",
            "## Limits", "",
            f"- A few CPU-hours on {data} against the paper's GPU-days on DIV2K+Flickr2K: expect "
            "the gap to the paper's row above" + ("." if paper_sized else
                                                  ", and this network is much smaller."),
            "- Set5 and Set14 were never seen in training or validation."]
  return "\n".join(lines) + "\n"


def _start_rows(t: dict, scale: int) -> list[str]:
  start = t.get("init_from")
  if not start:
    return []
  named = f"fgrn_x{scale}" if start == "shipped" else pathlib.Path(start).name
  return [f"| fine-tuned from | the weights of `{named}` |"]


def _tflite_rows(model: pathlib.Path) -> list[str]:
  found = [d for d in sorted((model / "export" / "tflite").glob("*")) if d.is_dir()]
  if not found:
    return [f"| TFLite halves | not shipped (the package holds 25 MB of models): "
            f"`fgrn-export --model {model.name} --formats tflite_float16 --output_dir DIR` "
            "writes them |"]
  return [f"| TFLite {d.name} | `export/tflite/{d.name}/{{downscaler,upscaler}}.tflite` "
          f"({_mb(d)}) |" for d in found]


def _crop_lines(model: pathlib.Path, sets: list[str]) -> list[str]:
  pictures = sorted((model / CARD_DIR).glob("*.png"))
  if not pictures:
    return []
  lines = ["", "### At 1:1", "",
           "Left: MATLAB-bicubic's LR; right: this model's LR; the window where the two differ "
           "most (`fgrn_tf/export/lr_crops.py`), pixels 1:1 (view the PNG at 100%)."]
  for p in pictures:
    lines += ["", f"![{p.stem}: bicubic LR, left; FGRN LR, right]({CARD_DIR}/{p.name})"]
  return lines


def _codec_rows(results: dict, sets: list[str], objective: config.Objective) -> list[str]:
  """The round trip with the LR through each lossy codec of `fgrn-eval --codec`, if any."""
  lossy = [c for c in results.get("codecs", []) if c != "png"]
  if not lossy:
    return []
  lines = ["", "## Through codecs: Y PSNR (dB) / bits per HR pixel of the stored LR", "",
           "The LR through OpenCV's encoder and decoder between downscale and upscale "
           "(docs/codecs.md); " + _codec_line(objective).replace("It was", "this model was")
           .rstrip(" "), "",
           "| method | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
  for codec in lossy:
    for method, name in (("fgrn", "FGRN"), ("bicubic", "bicubic")):
      cells = [results["datasets"][s].get("codecs", {}).get(codec, {}).get(method) for s in sets]
      if all(cells):
        lines.append(f"| {name}, LR as {codec} | " + " | ".join(
            f"{_f(c['psnr'], 2)} / {_f(c['bpp'], 2)}" for c in cells) + " |")
  return lines


def write_card(model, evals: str, commands_file=None, crops=None) -> pathlib.Path:
  """Writes `model`/MODEL_CARD.md; returns its path.

  Args:
    model: the shipped model's folder.
    evals: "label=folder,..." of `fgrn-eval` output folders.
    commands_file: a file with the commands that made the numbers (copied verbatim), or None.
    crops: HR image paths whose LR the card shows at 1:1 beside bicubic's (`lr_crops`,
      written to `model`/card/, replacing the pictures there), or None to keep those there.

  Raises:
    FGRNError: a file is missing or unreadable, or a results.json lacks an entry (one line).
  """
  model = pathlib.Path(model)
  try:
    results = []
    for item in evals.split(","):
      label, _, folder = item.partition("=")
      results.append((label, json.loads((pathlib.Path(folder) / "results.json").read_text())))
    commands = (pathlib.Path(commands_file).read_text().strip().splitlines()
                if commands_file else [])
    card(model, results, commands)  # a bad results.json fails before the pictures are made
    if crops:
      _write_pictures(model, crops)
    text = card(model, results, commands)
  except KeyError as e:
    raise FGRNError(f"missing entry {e} in a config, train state or results.json") from None
  except (OSError, ValueError) as e:
    raise FGRNError(one_line(e)) from None
  files.write_text(model / CARD, text)
  return model / CARD


def _write_pictures(model: pathlib.Path, crops) -> None:
  folder = model / CARD_DIR
  written = lr_crops.write_crops(model, crops, folder)
  for old in folder.glob("*.png"):
    if old not in written:
      old.unlink()
