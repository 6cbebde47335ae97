"""`python -m fgrn_tf info ...`: the command-line tool (thin; the work is in the library)."""

from __future__ import annotations

import argparse
import json
import sys


def _info(args) -> int:
  from fgrn_tf import config
  from fgrn_tf.models.fgrn import FGRN

  cfg = config.model_preset_for_scale(args.scale)
  model = FGRN(cfg)
  counts = {"Gd": model.downscaler.count_params(), "Gu": model.upscaler.count_params(),
            "F": model.flow.count_params() if model.flow is not None else 0,
            "total": model.count_params()}
  if args.json:
    print(json.dumps({"scale": args.scale, **counts}))
  else:
    paper = {2: 1.33e6, 4: 3.35e6}[args.scale]
    print(f"FGRN x{args.scale}: width {cfg.width}, Gd {cfg.down_blocks} ResBlocks, "
          f"Gu {cfg.up_blocks} ResBlocks, F {cfg.flow_cells} cells (growth {cfg.flow_growth})")
    for k, v in counts.items():
      print(f"  {k:6s} {v:>10,d}")
    print(f"  paper  {paper:>10,.0f}  ({100 * (counts['total'] / paper - 1):+.2f}%)")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m fgrn_tf", description=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  info = sub.add_parser("info", help="parameter counts of Gd, Gu, F and the total")
  info.add_argument("--scale", type=int, default=2, choices=(2, 4))
  info.add_argument("--json", action="store_true", help="print one JSON object")
  info.set_defaults(func=_info)
  args = parser.parse_args(argv)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
