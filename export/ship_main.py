"""Ships a trained run as the tools' default model, fgrn_tf/shipped_models/fgrn_x<scale>/
(`fgrn-ship`; see fgrn_tf/cli/ship.py for the flags)."""
from fgrn_tf.cli.ship import main

if __name__ == "__main__":
  main()
