"""The model card copies the evaluation's numbers and says whether training is finished."""

import json

from export import model_card
from fgrn_tf import config


def _results(psnr, with_bicubic):
  methods = {"fgrn": {"psnr": psnr, "ssim": 0.9, "lr_psnr": 40.0, "piqe": 30.0}}
  if with_bicubic:
    methods["bicubic"] = {"psnr": 33.68, "ssim": 0.9305, "lr_psnr": "inf", "piqe": 41.2}
  return {"datasets": {"Set5": {"methods": methods}, "Set14": {"methods": methods}}}


def test_card_holds_each_evaluation_row_and_the_unfinished_state(tmp_path):
  model = tmp_path / "fgrn_x2"
  (model / "export" / "tflite" / "float16").mkdir(parents=True)
  exp = config.preset("cpu_x2")
  (model / "config.json").write_text(exp.to_json())
  (model / "train_state.json").write_text(json.dumps(
      {"step": 750, "train_seconds": 7200, "best_val_psnr": 33.5, "best_step": 750}))
  (model / "best.weights.h5").write_bytes(b"0" * 1000)
  text = model_card.card(model, [("Keras", _results(36.123, True)),
                                 ("TFLite float16", _results(36.101, False))],
                         ["python eval_main.py ..."])
  assert "**Training is not finished** (750 of 5000 steps)" in text
  assert "2.00 hours" in text
  assert "| bicubic down + bicubic up | 33.68 / 0.9305 | 33.68 / 0.9305 |" in text
  assert "| FGRN (Keras) | 36.12 / 0.9000 |" in text
  assert "| FGRN (TFLite float16) | 36.10 / 0.9000 |" in text
  assert "44.15 / 0.9902" in text  # the paper's x2 row
  assert "python eval_main.py ..." in text
