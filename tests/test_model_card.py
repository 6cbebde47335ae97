"""The model card copies the evaluation's numbers and says whether training is finished."""

import json
import sys

import forked_tools
import numpy as np
from conftest import ROOT

from fgrn_tf import config
from fgrn_tf.export import model_card


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


def _shipped_model(folder):
  (folder / "export" / "tflite" / "float16").mkdir(parents=True)
  (folder / "config.json").write_text(config.preset("cpu_x2").to_json())
  (folder / "train_state.json").write_text(json.dumps({"step": 5000, "train_seconds": 3600}))
  (folder / "best.weights.h5").write_bytes(b"0" * 1000)
  return folder


def _card_tool(*args):
  return forked_tools.run([sys.executable, "export/model_card.py", *map(str, args)], cwd=ROOT,
                          timeout=120)


def test_model_card_script_writes_the_card_of_the_results_and_fails_in_one_line(tmp_path):
  model = _shipped_model(tmp_path / "fgrn_x2")
  (tmp_path / "keras").mkdir()
  (tmp_path / "keras" / "results.json").write_text(json.dumps(_results(36.5, True)))
  (tmp_path / "commands.txt").write_text("python eval_main.py --model m\n")
  proc = _card_tool("--model", model, "--eval", f"Keras={tmp_path / 'keras'}",
                    "--commands", tmp_path / "commands.txt")
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = (model / "MODEL_CARD.md").read_text()
  assert text == model_card.card(model, [("Keras", _results(36.5, True))],
                                 ["python eval_main.py --model m"])
  assert "Training is complete." in text
  proc = _card_tool("--model", model, "--eval", f"Keras={tmp_path / 'missing'}")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("model_card: error:"), proc.stderr
  assert "missing" in lines[0] and (model / "MODEL_CARD.md").read_text() == text


def test_lr_crop_window_is_where_the_model_lr_differs_most_from_bicubic():
  from fgrn_tf.export import lr_crops

  bicubic = np.full((64, 96, 3), 100, np.uint8)
  model_lr = bicubic.copy()
  model_lr[40:56, 70:86] = 140  # speckle in one place
  assert lr_crops.worst_window(bicubic, model_lr, 32) == (32, 64)
  figure = lr_crops.side_by_side(bicubic, model_lr, 32)
  assert figure.shape == (32, 2 * 32 + lr_crops.GAP, 3)
  assert (figure[:, :32] == 100).all() and (figure[:, 32:32 + lr_crops.GAP] == 255).all()
  np.testing.assert_array_equal(figure[:, 32 + lr_crops.GAP:], model_lr[32:64, 64:96])


def test_card_shows_the_lr_crops_it_wrote_and_drops_stale_ones(tmp_path):
  from helpers import write_model_dir

  from fgrn_tf.data import images
  from fgrn_tf.export import shipper

  model = tmp_path / "fgrn_x2"
  write_model_dir(model, seed=0)
  (model / "train_state.json").write_text(json.dumps({"step": 5000, "train_seconds": 3600}))
  (model / shipper.CARD_DIR).mkdir()
  (model / shipper.CARD_DIR / "stale.png").write_bytes(b"old")
  hr = (np.random.default_rng(0).uniform(0, 255, (40, 48, 3))).astype(np.uint8)
  images.write_image(tmp_path / "bird.png", hr)
  (tmp_path / "keras").mkdir()
  (tmp_path / "keras" / "results.json").write_text(json.dumps(_results(36.5, True)))
  path = model_card.write_card(model, f"Keras={tmp_path / 'keras'}", crops=[tmp_path / "bird.png"])
  assert [p.name for p in (model / shipper.CARD_DIR).iterdir()] == ["bird.png"]
  picture = images.read_rgb8(model / shipper.CARD_DIR / "bird.png")
  assert picture.shape == (20, 2 * 20 + 4, 3)  # the whole 20x24 LR is narrower than 128
  assert "![bird: bicubic LR, left; FGRN LR, right](card/bird.png)" in path.read_text()
  assert "| TFLite halves | not shipped" in path.read_text()


def test_card_of_a_codec_model_names_its_codec_range_and_starting_point(tmp_path):
  model = _shipped_model(tmp_path / "codec_x2")
  (model / "config.json").write_text(config.preset("codec_x2").to_json())
  text = model_card.card(model, [("Keras", _results(36.5, True))], [])
  assert "trained for LRs stored as JPEG at quality 75..95 (on 50% of" in text
  assert "| fine-tuned from | the weights of `fgrn_x2` |" in text
