"""An evaluation's reports: results.json, results.md in the layout of FGRN's Tables 1-2, figures.

The published rows under our own come from `fgrn_tf.paper` (FGRN, Li et al., BMVC 2021, and the
bicubic baseline of the literature).
"""

from __future__ import annotations

import io
import json
import math

import numpy as np

from fgrn_tf import paper
from fgrn_tf.evaluate.outputs import FIGURE_SOFTWARE

DISPLAY = {"bicubic": "Bicubic", "fgrn": "FGRN"}


def json_bytes(results: dict) -> bytes:
  """results.json: standard JSON (see `json_safe`), one space of indent."""
  return (json.dumps(json_safe(results), indent=1) + "\n").encode()


def json_safe(x):
  """inf -> "inf" / "-inf", NaN -> null, so the file is standard JSON."""
  if isinstance(x, dict):
    return {k: json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [json_safe(v) for v in x]
  if isinstance(x, (float, np.floating)):
    x = float(x)
    if math.isnan(x):
      return None
    if math.isinf(x):
      return "inf" if x > 0 else "-inf"
  return x


def _fmt(x, digits):
  if x is None:
    return "—"
  if isinstance(x, str):
    return x
  if math.isinf(x):
    return "inf"
  return f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return lines


def _published_rows(table: dict, names: list[str], scale: int, sets: list[str], label,
                    digits: tuple[int, int]) -> list[list[str]]:
  """A row per method the paper's `table` has a value for on one of `sets`.

  Args:
    table: (method, scale) -> dataset -> (first, second) value, from `fgrn_tf.paper`.
    names: the methods evaluated.
    scale: the scale.
    sets: the dataset columns.
    label: method name -> the row's first cell.
    digits: decimals of the two values.
  """
  rows = []
  for n in names:
    pub = table.get((n, scale), {})
    if any(s in pub for s in sets):
      rows.append([label(n)] + [f"{pub[s][0]:.{digits[0]}f} / {pub[s][1]:.{digits[1]}f}"
                                if s in pub else "—" for s in sets])
  return rows


def _niqe_cell(m: dict, niqe_on: bool) -> str:
  if not niqe_on:
    return "n/c"
  cell = _fmt(m["niqe"], 3)
  if m["niqe_undefined"]:
    cell += f" ({m['niqe_undefined']}/{m['images']} undef.)"
  return cell


def render_markdown(results: dict) -> str:
  """results.md: Table-1 layout (rows methods, columns datasets) for PSNR / SSIM, the same for
  NIQE / PIQE of the LR, and the LR's PSNR against the bicubic LR.

  Args:
    results: what `evaluator.evaluate` returns.
  """
  scale = results["scale"]
  data = results["datasets"]
  sets = list(data)
  names = results["methods"]
  niqe_on = results["protocol"]["niqe"] != "not computed"
  # A column's means are over the images evaluated; say so where files were skipped, or the
  # row reads as a mean over the whole set (the published rows are).
  columns = [s if data[s]["evaluated"] == data[s]["files"]
             else f"{s} ({data[s]['evaluated']} of {data[s]['files']} images)" for s in sets]
  md = [f"# Evaluation x{scale}", ""]
  if results.get("model"):
    md += [f"Model: `{results['model']}`", ""]
  md += [f"HR mod-cropped to multiples of {scale}; PSNR / SSIM on Y (BT.601, float64), {scale}-px "
         "border dropped; SSIM 11x11 Gaussian (sigma 1.5). See docs/evaluation.md.", ""]

  md += [f"## PSNR (dB) / SSIM, x{scale}", ""]
  rows = [[DISPLAY[n]] + [f"{_fmt(data[s]['methods'][n]['psnr'], 2)} / "
                          f"{_fmt(data[s]['methods'][n]['ssim'], 4)}" for s in sets]
          for n in names]
  rows += _published_rows(
      paper.PSNR_SSIM, names, scale, sets,
      lambda n: f"{DISPLAY[n]} ({'published' if n == 'bicubic' else 'paper'})", (2, 4))
  md += _table(["Method"] + columns, rows) + [""]

  md += [f"## LR quality: NIQE / PIQE of the LR (Y; lower is better), x{scale}", ""]
  rows = [[f"{DISPLAY[n]} LR"] + [f"{_niqe_cell(data[s]['methods'][n], niqe_on)} / "
                                  f"{_fmt(data[s]['methods'][n]['piqe'], 3)}" for s in sets]
          for n in names]
  rows += _published_rows(paper.LR_NIQE_PIQE, names, scale, sets,
                          lambda n: f"{DISPLAY[n]} LR (paper Table 2)", (3, 3))
  md += _table(["Method"] + columns, rows)
  md += ["", "NIQE is the mean over the images where it is defined; \"k/n undef.\" counts LR "
         "images whose block statistics give no covariance (under 192 px on both sides: one "
         "96-px block). The paper's values come from another implementation; compare methods "
         "within one table.", ""]

  md += [f"## LR PSNR (dB) against the bicubic LR, Y / RGB (no border), x{scale}", ""]
  rows = [[DISPLAY[n]] + [f"{_fmt(data[s]['methods'][n]['lr_psnr'], 2)} / "
                          f"{_fmt(data[s]['methods'][n].get('lr_psnr_rgb'), 2)}" for s in sets]
          for n in names]
  md += _table(["Method"] + columns, rows)
  md += ["", "Y alone hides colour speckle in an LR; the RGB figure shows it.", ""]

  lossy = [c for c in results.get("codecs", ["png"]) if c != "png"]
  if lossy or results.get("codecs", ["png"]) != ["png"]:
    md += [f"## Through codecs: Y PSNR (dB) of the round trip / bits per HR pixel of the LR, "
           f"x{scale}", "",
           "The LR goes through OpenCV's encoder and decoder (JPEG: libjpeg-turbo, 4:2:0 "
           "chroma; WebP: libwebp; PNG: lossless) before the upscale.", ""]
    rows = []
    for codec in results["codecs"]:
      for n in names:
        cells = []
        for s in sets:
          m = (data[s]["methods"] if codec == "png" else data[s]["codecs"][codec])[n]
          cells.append(f"{_fmt(m['psnr'], 2)} / {_fmt(m.get('bpp'), 2)}")
        rows.append([f"{DISPLAY[n]}, LR as {codec}"] + cells)
    md += _table(["Method"] + columns, rows) + [""]

  md += ["## Images", ""]
  for s in sets:
    md.append(f"- {s}: {data[s]['evaluated']} of {data[s]['files']} evaluated ({data[s]['path']})")
  for s in sets:
    for k in data[s]["skipped"]:
      md.append(f"- skipped {s}/{k['name']}: {k['reason']}")
  md.append("")
  for s in sets:
    if data[s].get("figure"):
      md += [f"![{s}]({data[s]['figure']})", ""]
  return "\n".join(md)


def _crop_box(h: int, w: int, scale: int):
  """A centred square about half the short side (at most 192 px), aligned to the scale."""
  side = min(h, w, max(min(h, w) // 2, 4 * scale), 192)
  side -= side % scale
  top = (h - side) // 2
  left = (w - side) // 2
  return top - top % scale, left - left % scale, side


def render_figure(image_name: str, hr: np.ndarray, outputs: dict, scale: int) -> bytes:
  """One PNG: a crop of HR, bicubic up, FGRN up, FGRN LR and bicubic LR, PSNR under each,
  tagged with FIGURE_SOFTWARE.

  Args:
    image_name: shown in the title.
    hr: uint8 HR `[H, W, 3]`.
    outputs: method -> (lr, sr, record with "psnr" and "lr_psnr").
    scale: the scale.

  Returns:
    The PNG file's bytes.
  """
  from matplotlib.figure import Figure

  top, left, side = _crop_box(hr.shape[0], hr.shape[1], scale)
  # The LR panels show a quarter of the panel's width in LR pixels: each LR pixel is drawn
  # about 4x larger than the HR crop's (no interpolation), so colour speckle is visible.
  ls = max(8, side // 4)
  lt, ll = top // scale + (side // scale - ls) // 2, left // scale + (side // scale - ls) // 2
  panels = [("HR", hr[top:top + side, left:left + side], "reference")]
  for n in ("bicubic", "fgrn"):
    if n in outputs:
      lr, sr, rec = outputs[n]
      panels.append((f"{DISPLAY[n]} up", sr[top:top + side, left:left + side],
                     f"PSNR {_fmt(rec['psnr'], 2)} dB"))
  for n in ("fgrn", "bicubic"):
    if n in outputs:
      lr, sr, rec = outputs[n]
      note = ("reference LR" if n == "bicubic"
              else f"vs bicubic LR: Y {_fmt(rec['lr_psnr'], 2)}, "
                   f"RGB {_fmt(rec.get('lr_psnr_rgb'), 2)} dB")
      panels.append((f"{DISPLAY[n]} LR ({ls}x{ls} px, enlarged)", lr[lt:lt + ls, ll:ll + ls],
                     note))
  fig = Figure(figsize=(2.6 * len(panels), 3.1), dpi=100)
  axes = fig.subplots(1, len(panels))
  for ax, (title, img, note) in zip(np.atleast_1d(axes), panels, strict=True):
    ax.imshow(img, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(note, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(f"{image_name}, x{scale} (image PSNR on Y; crop {side}x{side} HR px)",
               fontsize=10)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png", metadata={"Software": FIGURE_SOFTWARE})
  return buf.getvalue()
