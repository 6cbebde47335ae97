"""Writes MODEL_CARD.md for a shipped model from `fgrn-eval` results (see
fgrn_tf/cli/model_card.py for the flags)."""
from fgrn_tf.cli.model_card import main

if __name__ == "__main__":
  main()
