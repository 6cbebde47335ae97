"""`python -m fgrn_tf` is the `fgrn` tool (docs/cli.md; flags in fgrn_tf/cli/rescale.py):

  fgrn downscale INPUT... -o OUTPUT_DIR [--model M] [--scale S] [--tile N] [--overwrite]
  fgrn upscale   INPUT... -o OUTPUT_DIR [--model M] [--scale S] [--tile N] [--overwrite]
  fgrn roundtrip INPUT... [-o OUTPUT_DIR] [--lr_dir DIR] [--nometrics] [--model M] ...
  fgrn info [--scale 2|4] [--json]
  fgrn models [--json]
  fgrn --version
"""

from fgrn_tf.cli.rescale import main

if __name__ == "__main__":
  main()
