"""Evaluation: methods x datasets -> results.json, results.md and one comparison figure per set.

The protocol of the rescaling literature (and of FGRN's Tables 1-2): HR mod-cropped to the
scale; LR = method's downscale (uint8), SR = its upscale of that LR (uint8); PSNR/SSIM on Y
(BT.601, float64, unrounded) with `scale` border pixels dropped; NIQE and PIQE on the rounded Y
of the LR; the LR's Y-PSNR against the MATLAB-bicubic LR (no border dropped). See
docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import pathlib
import sys
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from fgrn_tf import inference
from fgrn_tf.data import images
from fgrn_tf.metrics.niqe import NiqeParams, load_niqe_params, niqe
from fgrn_tf.metrics.piqe import piqe
from fgrn_tf.metrics.psnr_ssim import crop_border, mod_crop, psnr, psnr_y, rgb_to_y, ssim

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_ROOT_ENV = "FGRN_DATA_ROOT"
METHODS = ("bicubic", "fgrn")
DISPLAY = {"bicubic": "Bicubic", "fgrn": "FGRN"}
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
# The PNG "Software" text of every figure written here: how a later run tells its own figures
# from the images of a dataset folder given as --output_dir by mistake.
FIGURE_SOFTWARE = "fgrn-tf eval_main.py"
_FIGURE_MARK = b"Software\x00" + FIGURE_SOFTWARE.encode()

# Published rows (PSNR, SSIM): bicubic as in every SR/rescaling paper, FGRN from its Table 1.
PUBLISHED = {
  ("bicubic", 2): {"Set5": (33.66, 0.9299), "Set14": (30.24, 0.8688),
                   "BSD100": (29.56, 0.8431), "Urban100": (26.88, 0.8403)},
  ("bicubic", 4): {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027),
                   "BSD100": (25.96, 0.6675), "Urban100": (23.14, 0.6577)},
  ("fgrn", 2): {"Set5": (44.15, 0.9902), "Set14": (42.28, 0.9840), "BSD100": (41.87, 0.9887),
                "Urban100": (41.71, 0.9904), "DIV2K": (45.08, 0.9917)},
  ("fgrn", 4): {"Set5": (36.97, 0.9505), "Set14": (33.77, 0.9168), "BSD100": (31.83, 0.8907),
                "Urban100": (31.91, 0.9253), "DIV2K": (35.15, 0.9322)},
}
# FGRN Table 2: NIQE / PIQE of the LR images.
PUBLISHED_LR = {
  ("bicubic", 2): {"Set5": (16.027, 38.561), "Set14": (8.519, 39.802),
                   "BSD100": (5.282, 32.494), "Urban100": (5.708, 42.788)},
  ("bicubic", 4): {"Set5": (18.876, 51.101), "Set14": (17.932, 45.335)},
  ("fgrn", 2): {"Set5": (16.166, 30.124)},
  ("fgrn", 4): {"Set5": (18.876, 40.627)},
}


class EvalError(Exception):
  """Bad input to the evaluation (missing dataset or model, wrong scale): a one-line message."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A folder of HR images to evaluate on."""

  name: str
  path: pathlib.Path
  files: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Method:
  """A rescaling method: uint8 HR `[H, W, 3]` -> uint8 LR, uint8 LR -> uint8 SR."""

  name: str
  downscale: Callable[[np.ndarray], np.ndarray]
  upscale: Callable[[np.ndarray], np.ndarray]


# ---- inputs ---------------------------------------------------------------------------------

def default_data_root() -> pathlib.Path | None:
  """`$FGRN_DATA_ROOT`, else ../shared/datasets beside the repo when it exists, else None."""
  env = os.environ.get(DATA_ROOT_ENV)
  if env:
    return pathlib.Path(env)
  default = REPO.parent / "shared" / "datasets"
  return default if default.is_dir() else None


def resolve_datasets(specs: Sequence[str], data_root=None) -> list[Dataset]:
  """Dataset names (folders under the data root) or paths -> Datasets; EvalError if missing."""
  root = pathlib.Path(data_root) if data_root else default_data_root()
  out: list[Dataset] = []
  for spec in specs:
    spec = spec.strip()
    if not spec:
      continue
    as_path = pathlib.Path(spec).expanduser()
    looked = []
    if root is not None and not as_path.is_absolute():
      looked.append(root / spec)
    looked.append(as_path)
    path = next((p for p in looked if p.is_dir()), None)
    if path is None:
      where = " or ".join(str(p) for p in looked)
      hint = "" if root is not None else (
          f" (no data root: pass --data_root or set {DATA_ROOT_ENV})")
      raise EvalError(f"dataset {spec!r} not found: no folder {where}{hint}")
    try:
      files = images.list_images(path)
    except images.ImageError as e:
      raise EvalError(f"dataset {spec!r}: {e}") from None
    name = path.name or spec
    taken = {d.name for d in out}
    while name in taken:
      name += "_"
    out.append(Dataset(name, path, tuple(files)))
  if not out:
    raise EvalError("no dataset given (--datasets Set5,Set14 or paths)")
  return out


def parse_methods(spec: str | Sequence[str]) -> list[str]:
  names = spec.split(",") if isinstance(spec, str) else list(spec)
  names = [n.strip().lower() for n in names if n.strip()]
  bad = [n for n in names if n not in METHODS]
  if bad or not names:
    raise EvalError(f"unknown method {', '.join(bad) or '(none)'}; choose from "
                    f"{', '.join(METHODS)} (comma-separated)")
  return list(dict.fromkeys(names))


def bicubic_method(scale: int) -> Method:
  """MATLAB-bicubic down and up (the project's one bicubic), rounded to uint8 each way."""
  from fgrn_tf.data.imresize import bicubic_downscale, bicubic_upscale

  def to8(x):
    return np.clip(np.round(np.asarray(x)[0]), 0, 255).astype(np.uint8)

  return Method("bicubic",
                lambda hr: to8(bicubic_downscale(hr[None].astype(np.float32), scale)),
                lambda lr: to8(bicubic_upscale(lr[None].astype(np.float32), scale)))


def fgrn_method(model, scale: int) -> Method:
  """A trained FGRN through `backends.load_backend` (workdir, SavedModel or .tflite pair).

  Args:
    model: path, or None for the shipped weights in models/fgrn_x{scale}/.
    scale: the scale asked for; a model of another scale is refused.
  """
  from fgrn_tf.backends import load_backend

  if model:
    path = pathlib.Path(str(model)).expanduser()
  else:
    path = inference.default_model_path(scale)
    if not path.exists():
      raise EvalError(f"no FGRN model for x{scale}: looked for shipped weights in {path}; pass "
                      f"--model WORKDIR|SAVEDMODEL|TFLITE (train one with train_main.py)")
  pair = "," in str(model or "")  # "down.tflite,up.tflite": load_backend splits it
  try:
    backend = load_backend(str(model) if pair else path)
  except Exception as e:  # noqa: BLE001 -- any loader failure becomes one line for the user
    if not pair and not path.exists():
      raise EvalError(f"model not found: {path} (no such file or folder)") from None
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise EvalError(f"could not load model {path}: {msg}") from None
  if backend.scale != scale:
    raise EvalError(f"model {path} is x{backend.scale} but --scale {scale} was asked; pass "
                    f"--scale {backend.scale} or a x{scale} model")
  return Method("fgrn", lambda hr: backend.downscale(hr[None])[0],
                lambda lr: backend.upscale(lr[None])[0])


def min_side(scale: int) -> int:
  """Smallest mod-cropped HR side evaluated: SSIM's 11x11 window after the border crop."""
  side = 11 + 2 * scale
  return side + (-side % scale)


# ---- where the results go -----------------------------------------------------------------

def check_output_dir(output_dir) -> pathlib.Path:
  """EvalError (one line) unless `output_dir` is a folder, or can be made one, that this
  process can write in. Cheap, and run before anything is loaded, so a typo in the last flag
  does not cost a whole evaluation."""
  out = pathlib.Path(output_dir).expanduser()
  if os.path.lexists(out) and not out.is_dir():
    raise EvalError(f"--output_dir {out}: exists and is not a folder")
  base = out
  while not os.path.lexists(base) and base != base.parent:
    base = base.parent
  if not base.is_dir():
    raise EvalError(f"--output_dir {out}: {base} is not a folder")
  try:
    # Permission bits do not tell (root ignores them; read-only mounts, /proc): try it.
    os.rmdir(tempfile.mkdtemp(prefix=".eval-probe-", dir=base))
  except OSError as e:
    raise EvalError(f"--output_dir {out}: cannot write in {base} "
                    f"({e.strerror or e})") from None
  return out


def _is_our_figure(path: pathlib.Path) -> bool:
  try:
    with open(path, "rb") as f:
      head = f.read(4096)  # matplotlib writes its text chunks right after the header
  except OSError:
    return False
  return head.startswith(b"\x89PNG") and _FIGURE_MARK in head


def _listed_figures(out: pathlib.Path) -> set[str]:
  """Figures named by a results.json already in `out` (also those written before figures
  carried FIGURE_SOFTWARE)."""
  try:
    old = json.loads((out / RESULTS_JSON).read_text())
    return {d["figure"] for d in old["datasets"].values() if isinstance(d.get("figure"), str)}
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return set()


def _foreign_image(out: pathlib.Path) -> str | None:
  """The name of an image file directly in `out` that no evaluation wrote, if there is one."""
  listed = None
  with os.scandir(out) as entries:
    for entry in entries:
      if pathlib.Path(entry.name).suffix.lower() not in images.IMAGE_EXTENSIONS:
        continue
      if not entry.is_file() or _is_our_figure(pathlib.Path(entry.path)):
        continue
      listed = _listed_figures(out) if listed is None else listed
      if entry.name not in listed:
        return entry.name
  return None


def output_files(sets: Sequence[Dataset], scale: int) -> list[str]:
  return [RESULTS_JSON, RESULTS_MD, *(f"{ds.name}_x{scale}.png" for ds in sets)]


def check_outputs(out: pathlib.Path, sets: Sequence[Dataset], scale: int,
                  overwrite: bool) -> None:
  """EvalError (one line) when writing the results into `out` would change what is evaluated
  (it is, or is inside, a dataset folder; it holds images this tool did not write) or replace
  results without `overwrite`."""
  real = out.resolve()
  for ds in sets:
    root = ds.path.resolve()
    if real == root or root in real.parents:
      raise EvalError(f"--output_dir {out} is inside the dataset {ds.name} ({ds.path}) being "
                      f"evaluated: the next run would count the figures as images; choose "
                      f"another folder")
  if real.is_dir():
    try:
      foreign = _foreign_image(real)
    except OSError as e:
      raise EvalError(f"--output_dir {out}: cannot list it ({e.strerror or e})") from None
    if foreign:
      raise EvalError(f"--output_dir {out} holds images eval_main.py did not write "
                      f"({foreign}): an image folder? choose another folder")
  for name in output_files(sets, scale):
    path = out / name
    if not os.path.lexists(path):
      continue
    if not path.is_file():
      raise EvalError(f"{path}: exists and is not a file")
    if not overwrite:
      raise EvalError(f"{path} exists (pass --overwrite to replace the results in {out})")


def _write_outputs(out: pathlib.Path, files: dict[str, bytes], overwrite: bool) -> None:
  """Writes every file (each atomically); on a failure removes those this call created, so a
  full disk leaves the old results or none, and one line naming the file."""
  created = []
  path = out
  try:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
      path = out / name
      new = not os.path.lexists(path)
      images.write_atomic(path, data, overwrite=overwrite)
      if new:
        created.append(path)
  except OSError as e:
    for p in created:
      p.unlink(missing_ok=True)
    if isinstance(e, FileExistsError) and path != out:  # appeared since check_outputs
      raise EvalError(f"{path} exists (pass --overwrite to replace the results in {out})"
                      ) from None
    # Named here: the errno text of an atomic write names its hidden temporary file.
    raise EvalError(f"{path}: cannot write ({os.strerror(e.errno) if e.errno else e})"
                    ) from None


# ---- per image ------------------------------------------------------------------------------

def _y8(rgb: np.ndarray) -> np.ndarray:
  """Rounded Y as uint8 (MATLAB `rgb2ycbcr` on uint8), the input of NIQE and PIQE."""
  return np.round(rgb_to_y(rgb)).astype(np.uint8)


def evaluate_image(hr: np.ndarray, method: Method, scale: int, bicubic_lr: np.ndarray,
                   niqe_params: NiqeParams | None, lr: np.ndarray | None = None):
  """Metrics of one method on one mod-cropped uint8 HR image.

  Args:
    hr: uint8 `[H, W, 3]`, H and W multiples of `scale`.
    method: the method to run.
    scale: the scale.
    bicubic_lr: uint8 `[H/s, W/s, 3]`, the MATLAB-bicubic LR (reference for `lr_psnr`).
    niqe_params: pristine NIQE model, or None to skip NIQE.
    lr: the method's LR when already computed.

  Returns:
    (record: dict of psnr, ssim, lr_psnr, piqe[, niqe, niqe_undefined], lr uint8, sr uint8).
  """
  lr = method.downscale(hr) if lr is None else lr
  sr = method.upscale(lr)
  expect_lr = (hr.shape[0] // scale, hr.shape[1] // scale, 3)
  if lr.shape != expect_lr or sr.shape != hr.shape:
    raise EvalError(f"{method.name}: returned LR {lr.shape} / SR {sr.shape} for HR {hr.shape}")
  y_hr = crop_border(rgb_to_y(hr), scale)
  y_sr = crop_border(rgb_to_y(sr), scale)
  y_lr = _y8(lr)
  record = {
    "psnr": psnr(y_hr, y_sr),
    "ssim": ssim(y_hr, y_sr),
    "lr_psnr": psnr_y(lr, bicubic_lr, 0),
    "piqe": piqe(y_lr),
  }
  if niqe_params is not None:
    result = niqe(y_lr, niqe_params)
    record["niqe"] = result.score
    if not result.defined:
      record["niqe_undefined"] = result.reason
  return record, lr, sr


# ---- the run --------------------------------------------------------------------------------

class _Progress:
  """A one-line text progress bar on stderr."""

  def __init__(self, label: str, total: int, enabled: bool):
    self.label, self.total, self.enabled, self.done = label, total, enabled, 0

  def step(self, note: str):
    self.done += 1
    if not self.enabled:
      return
    width = 24
    filled = int(width * self.done / max(self.total, 1))
    bar = "#" * filled + "." * (width - filled)
    sys.stderr.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {note[:30]:<30}")
    if self.done == self.total:
      sys.stderr.write("\n")
    sys.stderr.flush()


def _mean(values):
  values = [v for v in values if v is not None]
  if not values:
    return None
  return float(np.mean(values))


def _summary(records: list[dict], niqe_on: bool) -> dict:
  out = {"images": len(records),
         "psnr": _mean([r["psnr"] for r in records]),
         "ssim": _mean([r["ssim"] for r in records]),
         "lr_psnr": _mean([r["lr_psnr"] for r in records]),
         "piqe": _mean([r["piqe"] for r in records])}
  if niqe_on:
    defined = [r["niqe"] for r in records if r["niqe"] is not None]
    out["niqe"] = _mean(defined)
    out["niqe_defined"] = len(defined)
    out["niqe_undefined"] = len(records) - len(defined)
  return out


def evaluate(methods: Sequence[str], scale: int, datasets: Sequence[str], output_dir,
             model=None, data_root=None, niqe_params=None, progress: bool = True,
             overwrite: bool = False) -> dict:
  """Evaluates methods on datasets and writes results.json, results.md and figures.

  Args:
    methods: names from METHODS.
    scale: integer rescaling factor.
    datasets: names under the data root, or paths.
    output_dir: where the outputs go (created). Refused, before anything is loaded, when it
      cannot be written, is or is inside a dataset being evaluated, or holds images this
      tool did not write.
    model: FGRN model path for the "fgrn" method (None: models/fgrn_x{scale}/).
    data_root: folder of named datasets (None: `default_data_root()`).
    niqe_params: path of the NIQE pristine model, None for the default, or "none" to skip NIQE.
    progress: draw a progress bar on stderr.
    overwrite: replace results.json, results.md and figures already in `output_dir`.

  Returns:
    The results dict also written to results.json.

  Raises:
    EvalError: bad input, with a one-line message.
  """
  if not isinstance(scale, int) or scale < 2:
    raise EvalError(f"--scale must be an integer >= 2, got {scale!r}")
  names = parse_methods(methods)
  output_dir = check_output_dir(output_dir)
  sets = resolve_datasets(datasets, data_root)
  check_outputs(output_dir, sets, scale, overwrite)
  params = None
  if not (isinstance(niqe_params, str) and niqe_params.lower() == "none"):
    try:
      params = load_niqe_params(niqe_params)
    except (OSError, ValueError) as e:
      raise EvalError(str(e)) from None
  runners = {"bicubic": bicubic_method(scale)}
  if "fgrn" in names:
    runners["fgrn"] = fgrn_method(model, scale)
  figures: dict[str, bytes] = {}  # written with the results, once everything has run

  results = {
    "scale": scale,
    "methods": names,
    "model": (str(model or inference.default_model_path(scale)) if "fgrn" in names else None),
    "protocol": {
      "hr": f"mod-cropped to multiples of {scale}",
      "psnr_ssim": f"Y (BT.601, 16..235, float64, unrounded), {scale}-px border dropped; "
                   "SSIM 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, valid-region mean",
      "lr_psnr": "Y PSNR of the method's LR against the MATLAB-bicubic LR, no border dropped",
      "niqe": "MATLAB niqe on the rounded Y of the LR; null when undefined (see reason)"
              if params is not None else "not computed",
      "piqe": "MATLAB piqe on the rounded Y of the LR",
    },
    "datasets": {},
  }
  for ds in sets:
    records = {n: [] for n in names}
    skipped = []
    figure_data = None
    bar = _Progress(f"{ds.name} x{scale}", len(ds.files), progress)
    for path in ds.files:
      name = pathlib.Path(path).stem
      try:
        hr = mod_crop(images.read_rgb8(path), scale)
      except images.ImageError as e:
        skipped.append({"name": name, "reason": str(e)})
        bar.step(name)
        continue
      need = min_side(scale)
      if min(hr.shape[:2]) < need:
        skipped.append({"name": name, "reason": f"too small: {hr.shape[0]}x{hr.shape[1]} after "
                                                f"mod-crop (needs {need} px per side at x{scale})"})
        bar.step(name)
        continue
      bic = runners["bicubic"]
      bic_lr = bic.downscale(hr)
      outputs = {}
      for n in names:
        record, lr, sr = evaluate_image(hr, runners[n], scale, bic_lr, params,
                                        lr=bic_lr if n == "bicubic" else None)
        records[n].append({"name": name, "size": list(hr.shape[:2]), **record})
        outputs[n] = (lr, sr, record)
      if figure_data is None:
        if "bicubic" not in outputs:  # the figure always shows the bicubic baseline
          bic_sr = bic.upscale(bic_lr)
          outputs["bicubic"] = (bic_lr, bic_sr,
                                {"psnr": psnr_y(hr, bic_sr, scale), "lr_psnr": math.inf})
        figure_data = (name, hr, outputs)
      bar.step(name)
    entry = {"path": str(ds.path), "files": len(ds.files),
             "evaluated": len(ds.files) - len(skipped), "skipped": skipped, "methods": {}}
    for n in names:
      entry["methods"][n] = {**_summary(records[n], params is not None), "per_image": records[n]}
    if figure_data is not None:
      fig_name = f"{ds.name}_x{scale}.png"
      figures[fig_name] = render_figure(*figure_data, scale=scale)
      entry["figure"] = fig_name
    results["datasets"][ds.name] = entry

  # results.json last: when it is there, so is everything it names.
  _write_outputs(output_dir, {
      **figures, RESULTS_MD: render_markdown(results).encode(),
      RESULTS_JSON: (json.dumps(_json_safe(results), indent=1) + "\n").encode()}, overwrite)
  return results


def _json_safe(x):
  """inf -> "inf" / "-inf", NaN -> null, so the file is standard JSON."""
  if isinstance(x, dict):
    return {k: _json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_json_safe(v) for v in x]
  if isinstance(x, (float, np.floating)):
    x = float(x)
    if math.isnan(x):
      return None
    if math.isinf(x):
      return "inf" if x > 0 else "-inf"
  return x


# ---- reports --------------------------------------------------------------------------------

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


def render_markdown(results: dict) -> str:
  """results.md: Table-1 layout (rows methods, columns datasets) for PSNR / SSIM, the same for
  NIQE / PIQE of the LR, and the LR's PSNR against the bicubic LR."""
  scale = results["scale"]
  sets = list(results["datasets"])
  names = results["methods"]
  niqe_on = results["protocol"]["niqe"] != "not computed"
  # A column's means are over the images evaluated; say so where files were skipped, or the
  # row reads as a mean over the whole set (the published rows are).
  columns = [s if results["datasets"][s]["evaluated"] == results["datasets"][s]["files"]
             else f"{s} ({results['datasets'][s]['evaluated']} of "
                  f"{results['datasets'][s]['files']} images)" for s in sets]
  md = [f"# Evaluation x{scale}", ""]
  if results.get("model"):
    md += [f"Model: `{results['model']}`", ""]
  md += [f"HR mod-cropped to multiples of {scale}; PSNR / SSIM on Y (BT.601, float64), {scale}-px "
         "border dropped; SSIM 11x11 Gaussian (sigma 1.5). See docs/evaluation.md.", ""]

  md += [f"## PSNR (dB) / SSIM, x{scale}", ""]
  rows = []
  for n in names:
    cells = [DISPLAY[n]]
    for s in sets:
      m = results["datasets"][s]["methods"][n]
      cells.append(f"{_fmt(m['psnr'], 2)} / {_fmt(m['ssim'], 4)}")
    rows.append(cells)
  for n in names:
    pub = PUBLISHED.get((n, scale), {})
    if any(s in pub for s in sets):
      rows.append([f"{DISPLAY[n]} ({'published' if n == 'bicubic' else 'paper'})"] + [
          f"{pub[s][0]:.2f} / {pub[s][1]:.4f}" if s in pub else "—" for s in sets])
  md += _table(["Method"] + columns, rows) + [""]

  md += [f"## LR quality: NIQE / PIQE of the LR (Y; lower is better), x{scale}", ""]
  rows = []
  for n in names:
    cells = [f"{DISPLAY[n]} LR"]
    for s in sets:
      m = results["datasets"][s]["methods"][n]
      if niqe_on:
        nq = _fmt(m["niqe"], 3)
        if m["niqe_undefined"]:
          nq += f" ({m['niqe_undefined']}/{m['images']} undef.)"
      else:
        nq = "n/c"
      cells.append(f"{nq} / {_fmt(m['piqe'], 3)}")
    rows.append(cells)
  for n in names:
    pub = PUBLISHED_LR.get((n, scale), {})
    if any(s in pub for s in sets):
      rows.append([f"{DISPLAY[n]} LR (paper Table 2)"] + [
          f"{pub[s][0]:.3f} / {pub[s][1]:.3f}" if s in pub else "—" for s in sets])
  md += _table(["Method"] + columns, rows)
  md += ["", "NIQE is the mean over the images where it is defined; \"k/n undef.\" counts LR "
         "images whose block statistics give no covariance (under 192 px on both sides: one "
         "96-px block). The paper's values come from another implementation; compare methods "
         "within one table.", ""]

  md += [f"## LR PSNR (dB) against the bicubic LR (Y, no border), x{scale}", ""]
  rows = [[DISPLAY[n]] + [_fmt(results["datasets"][s]["methods"][n]["lr_psnr"], 2)
                          for s in sets] for n in names]
  md += _table(["Method"] + columns, rows) + [""]

  skipped = [(s, k) for s in sets for k in results["datasets"][s]["skipped"]]
  md += ["## Images", ""]
  for s in sets:
    d = results["datasets"][s]
    md.append(f"- {s}: {d['evaluated']} of {d['files']} evaluated ({d['path']})")
  for s, k in skipped:
    md.append(f"- skipped {s}/{k['name']}: {k['reason']}")
  md.append("")
  for s in sets:
    if results["datasets"][s].get("figure"):
      md += [f"![{s}]({results['datasets'][s]['figure']})", ""]
  return "\n".join(md)


def _crop_box(h: int, w: int, scale: int):
  """A centred square about half the short side (at most 192 px), aligned to the scale."""
  side = min(h, w, max(min(h, w) // 2, 4 * scale), 192)
  side -= side % scale
  top = (h - side) // 2
  left = (w - side) // 2
  return top - top % scale, left - left % scale, side


def write_figure(path, image_name: str, hr: np.ndarray, outputs: dict, scale: int,
                 overwrite: bool = True) -> None:
  """`render_figure` written (atomically) to `path`."""
  images.write_atomic(path, render_figure(image_name, hr, outputs, scale), overwrite=overwrite)


def render_figure(image_name: str, hr: np.ndarray, outputs: dict, scale: int) -> bytes:
  """One PNG: a crop of HR, bicubic up, FGRN up, FGRN LR and bicubic LR, PSNR under each,
  tagged with FIGURE_SOFTWARE.

  Args:
    image_name: shown in the title.
    hr: uint8 HR `[H, W, 3]`.
    outputs: method -> (lr, sr, record with "psnr" and "lr_psnr").
    scale: the scale.
  """
  from matplotlib.figure import Figure

  top, left, side = _crop_box(hr.shape[0], hr.shape[1], scale)
  lt, ll, ls = top // scale, left // scale, side // scale
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
              else f"PSNR {_fmt(rec['lr_psnr'], 2)} dB vs bicubic LR")
      panels.append((f"{DISPLAY[n]} LR (pixels x{scale})", lr[lt:lt + ls, ll:ll + ls], note))
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
