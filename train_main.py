"""Trains FGRN (Li et al., BMVC 2021): `python train_main.py --preset quick` (`fgrn-train`)."""
from fgrn_tf.cli.train import main

if __name__ == "__main__":
  main()
