"""`python eval_main.py`: FGRN / bicubic on Set5, Set14, ... -> results.json, results.md, figures.

The same tool as `fgrn-eval` (fgrn_tf/cli/evaluate.py); see docs/evaluation.md.
"""

from fgrn_tf.cli.evaluate import main

if __name__ == "__main__":
  main()
