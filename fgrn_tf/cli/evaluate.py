"""`fgrn-eval` (`python eval_main.py`): FGRN / bicubic on Set5, Set14, ... -> results.json,
results.md and a figure per dataset, by the protocol of FGRN's Tables 1-2 (docs/evaluation.md).

Example:
  fgrn-eval --method bicubic,fgrn --scale 2 --datasets Set5,Set14 \\
      --model workdirs/x2 --output_dir results/x2
"""

from __future__ import annotations

import os
import sys

from absl import flags

from fgrn_tf.cli import common_flags, entry
from fgrn_tf.errors import UsageError

_METHOD = flags.DEFINE_string(
    "method", "fgrn", "Methods to evaluate, comma-separated: fgrn, bicubic.")
_SCALE = common_flags.scale(2, "The paper evaluates 2 and 4.")
_DATASETS = flags.DEFINE_string(
    "datasets", "Set5,Set14",
    "Comma-separated dataset names (folders under --data_root) or paths to image folders.")
_MODEL = common_flags.model()
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where results.json, results.md and the figures are written.")
_DATA_ROOT = flags.DEFINE_string(
    "data_root", None,
    "Folder holding the named datasets (Set5/, Set14/, ...). Default: $FGRN_DATA_ROOT; with "
    "neither, --datasets must be paths.")
_NIQE_PARAMS = flags.DEFINE_string(
    "niqe_params", None,
    "NIQE pristine model (.npz with mu_pris_param, cov_pris_param, gaussian_window). "
    "Default: $FGRN_NIQE_PARAMS; with neither, or 'none', NIQE is left out.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Draw a progress bar over images on stderr.")
_CODEC = flags.DEFINE_string(
    "codec", "png", "How the LR is stored between downscale and upscale, comma-separated: png "
    "(lossless), jpeg:Q, webp:Q (Q in 1..100; OpenCV's libjpeg-turbo 4:2:0 and libwebp). "
    "Every method's LR, bicubic's too, goes through the same codec.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace results.json, results.md and figures already in --output_dir.")
_MAX_PIXELS = common_flags.max_pixels()
_PRECISION = common_flags.precision()
flags.mark_flag_as_required("output_dir")


def _print_summary(results: dict) -> None:
  """A line per dataset, method and codec on stdout: the means, and over how many images."""
  for row in results["rows"]:
    ds = results["datasets"][row["dataset"]]
    head = f"{row['dataset']} x{results['scale']} {row['method']}" + (
        "" if results["codecs"] == ["png"] else f" {row['codec']}")
    if row.get("psnr") is None:
      print(f"{head}: no image evaluated")
      continue
    skipped = len(ds["skipped"])
    covers = (f"{row['images']} images" if not skipped else
              f"{row['images']} of {ds['files']} images; {skipped} skipped, see results.md")
    rate = f"  {row['bpp']:.2f} bpp" if row.get("bpp") is not None else ""
    print(f"{head}: PSNR {row['psnr']:.2f} dB  SSIM {row['ssim']:.4f}{rate}  ({covers})")


def _main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from fgrn_tf.data import images

  images.set_max_pixels(_MAX_PIXELS.value, flag="--max_pixels")  # before Keras imports cv2
  from fgrn_tf.data import codecs

  codecs.parse_list(_CODEC.value)  # a bad spec is told before seconds of TensorFlow import
  from fgrn_tf.evaluate import evaluator  # brings TensorFlow: only once the flags have parsed

  results = evaluator.evaluate(
      _METHOD.value, _SCALE.value, _DATASETS.value.split(","), _OUTPUT_DIR.value,
      model=_MODEL.value, data_root=_DATA_ROOT.value, niqe_params=_NIQE_PARAMS.value,
      progress=_PROGRESS.value, overwrite=_OVERWRITE.value, codecs=_CODEC.value,
      precision=_PRECISION.value)
  _print_summary(results)
  print(f"wrote {os.path.join(_OUTPUT_DIR.value, 'results.json')} and results.md")
  return 0


def main(argv=None) -> None:
  """Runs the tool (exits the process with its status); errors are told under the name it was
  started by (`eval_main.py: error: ...`, `fgrn-eval: error: ...`)."""
  entry.run(os.path.basename(sys.argv[0]) or "fgrn-eval", _main, argv)


if __name__ == "__main__":
  main()
