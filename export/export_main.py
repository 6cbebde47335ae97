"""Exports a trained FGRN: SavedModel, .tflite halves and a manifest (`fgrn-export`; see
fgrn_tf/cli/export.py for the flags)."""
from fgrn_tf.cli.export import main

if __name__ == "__main__":
  main()
