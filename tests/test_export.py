"""Export for deployment: every artifact agrees with Keras, runs where it ships, fails clearly.

One export of a tiny model in every format, made by `export/export_main.py` run as a script from
the repo root, feeds most tests (about a minute of CPU on 2 cores).
"""

import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from helpers import tiny_model

from export import export_lib
from fgrn_tf import backends, config, litert, workdir
from fgrn_tf.data import images

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
pytestmark = pytest.mark.slow  # the shared export below takes ~1 min of CPU

# The float32 artifacts compute what Keras computes: at most 1 level of rounding difference.
EXACT = ("savedmodel", "tflite_float32")


def smooth_images(seed: int, sizes) -> list[np.ndarray]:
  """Photo-like uint8 RGB images: smooth random colour fields with a little noise."""
  import cv2

  rng = np.random.default_rng(seed)
  out = []
  for h, w in sizes:
    field = cv2.resize(rng.uniform(0, 255, (4, 5, 3)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    out.append(np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8))
  return out


def make_workdir(path: pathlib.Path):
  model = tiny_model()
  workdir.write_experiment(path, config.smoke())
  model.save_weights(path / workdir.BEST_WEIGHTS)
  return model


def export_cli(*args, timeout=900):
  return subprocess.run([sys.executable, "export/export_main.py", *map(str, args)], cwd=ROOT,
                        env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  base = tmp_path_factory.mktemp("export")
  wd, check, out = base / "workdir", base / "check", base / "out"
  make_workdir(wd)
  for i, image in enumerate(smooth_images(1, [(40, 48), (32, 32), (36, 30)])):
    images.write_image(check / f"c{i}.png", image)
  # int8_full is kept whatever its quality on this random network, so that it can be tested.
  proc = export_cli("--workdir", wd, "--output_dir", out, "--check_dir", check,
                    "--check_crop", 0, "--max_int8_full_drop", 1000)
  assert proc.returncode == 0, proc.stderr[-3000:]
  keras = backends.load_backend(wd)
  return types.SimpleNamespace(out=out, wd=wd, keras=keras, stdout=proc.stdout,
                               manifest=json.loads((out / "manifest.json").read_text()))


def tflite_files(run):
  for name, a in run.manifest["artifacts"].items():
    for half, f in a.get("files", {}).items():
      yield name, half, run.out / f["path"]


def test_export_writes_serving_layout_tflite_pairs_and_manifest(run):
  m = run.manifest
  assert set(m["artifacts"]) == set(export_lib.FORMATS)
  assert (m["model_name"], m["version"], m["scale"]) == ("fgrn_x2", 1, 2)
  assert (run.out / "fgrn_x2" / "1" / "saved_model.pb").is_file()
  assert m["artifacts"]["savedmodel"]["path"] == "fgrn_x2/1"
  assert "multiples of 2" in m["inputs"]["downscale"]["constraint"]
  assert m["source"]["weights"] == workdir.BEST_WEIGHTS
  assert len(m["check_set"]["images"]) == 3
  for name, half, path in tflite_files(run):
    assert path.name == backends.TFLITE_FILES[half]
    entry = m["artifacts"][name]["files"][half]
    assert entry["bytes"] == path.stat().st_size > 0
    assert entry["ops"] == litert.check_builtin_ops(path.read_bytes(), path.name)
    assert "CONV_2D" in entry["ops"]
    assert litert.metadata(path.read_bytes()) == {
        "half": half, "scale": 2, "format": name, "model_config": config.smoke().model.to_dict()}
  for name in EXACT:
    a = m["artifacts"][name]["agreement"]
    assert a["downscale_max_abs_diff"] <= 1 and a["upscale_max_abs_diff"] <= 1, (name, a)
  assert all(name in run.stdout for name in export_lib.FORMATS)


def test_every_artifact_matches_keras_on_the_same_images(run):
  hrs = [im[None] for im in smooth_images(7, [(24, 32), (40, 40)])]
  hrs.append(np.stack(smooth_images(8, [(16, 20)] * 2)))  # a batch of 2
  for name in run.manifest["artifacts"]:
    backend = backends.load_backend(run.out, artifact=name)
    for hr in hrs:
      lr_k = run.keras.downscale(hr)
      sr_k = run.keras.upscale(lr_k)
      lr, sr = backend.downscale(hr), backend.upscale(lr_k)
      assert lr.shape == lr_k.shape and sr.shape == sr_k.shape, name
      down = np.abs(lr.astype(int) - lr_k).max()
      up = np.abs(sr.astype(int) - sr_k).max()
      if name in EXACT:
        assert down <= 1 and up <= 1, (name, hr.shape, down, up)
      elif name in ("tflite_float16", "tflite_int8"):
        assert down <= 8 and up <= 8, (name, hr.shape, down, up)  # weights rounded only
      else:  # full int8 on a random network: its quality is the export gate's job; no collapse
        assert sr.std() > 1 and lr.std() > 1, name


def invoke(interpreter, x):
  index = interpreter.get_input_details()[0]["index"]
  interpreter.resize_tensor_input(index, x.shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(index, x)
  interpreter.invoke()
  return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def reference_interpreter(**kwargs):
  """TFLite's own kernels with every tensor kept: each float tensor inside can be read back.

  (With the default XNNPACK delegate, tensors inside a delegated partition are never written,
  so reading them shows stale memory.)
  """
  return Interpreter(experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=True, **kwargs)


def nonfinite_tensors(interpreter) -> tuple[int, int]:
  """(float tensors, how many hold NaN or inf) after an invoke."""
  total = bad = 0
  for d in interpreter.get_tensor_details():
    if d["dtype"] == np.float32:
      total += 1
      bad += int(not np.isfinite(interpreter.get_tensor(d["index"])).all())
  return total, bad


def test_tflite_runs_at_two_sizes_in_one_process_without_nan(run):
  # One interpreter per file as a phone runs it (LiteRT, XNNPACK delegate, 2 threads), its
  # input resized between two image sizes; then every float tensor inside is checked with the
  # reference kernels, since a NaN in the network would be invisible in the uint8 output.
  sizes = [(1, 16, 24, 3), (2, 30, 20, 3)]
  for name, half, path in tflite_files(run):
    phone = Interpreter(model_path=str(path), num_threads=2)
    debug = reference_interpreter(model_path=str(path))
    for shape in sizes:
      x = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
      y = invoke(phone, x)
      s = 2 if half == "upscale" else 0.5
      assert y.dtype == np.uint8
      assert y.shape == (shape[0], int(shape[1] * s), int(shape[2] * s), 3), (name, half)
      assert y.std() > 1, (name, half)  # NaN becomes one constant after the uint8 cast
      if name != "tflite_int8_full":  # integer kernels differ between XNNPACK and TFLite's
        assert np.abs(invoke(debug, x).astype(int) - y).max() <= 1, (name, half, shape)
      else:
        invoke(debug, x)
      total, bad = nonfinite_tensors(debug)
      # Full int8 keeps only the float tensors around its quantize/dequantize ends.
      assert total >= (2 if name == "tflite_int8_full" else 10) and bad == 0, (name, half, shape)
      if name == "tflite_float32":
        ref = run.keras.downscale(x) if half == "downscale" else run.keras.upscale(x)
        assert np.abs(y.astype(int) - ref).max() <= 1, (half, shape)


def test_converting_a_module_that_holds_the_keras_model_is_nan_and_refused():
  # docs/TF-NOTES.md: this conversion path keeps the weights as resource variables and the
  # .tflite silently computes NaN on a phone; the export refuses such a model by its ops.
  model = tiny_model()
  module = tf.Module()
  module.model = model
  module.up = tf.function(model.upscale,
                          input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
  content = tf.lite.TFLiteConverter.from_concrete_functions(
      [module.up.get_concrete_function()], module).convert()
  with pytest.raises(litert.NotBuiltinOpsError, match="NaN"):
    litert.check_builtin_ops(content, "upscaler.tflite")
  x = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
  y = invoke(Interpreter(model_content=content), x)  # runs without an error...
  assert y.std() == 0  # ...into one constant (NaN cast to uint8)
  assert np.abs(y.astype(int) - model.upscale(x).numpy()).max() > 100
  with pytest.raises(RuntimeError, match="READ_VARIABLE"):  # and fails the finite check
    invoke(reference_interpreter(model_content=content), x)


def test_exported_tflite_has_frozen_weights_builtin_ops_and_named_signatures(run):
  for name, half, path in tflite_files(run):
    found = litert.ops(path.read_bytes())
    assert not litert.VARIABLE_OPS.intersection(found), (name, half)
    assert not [op for op in found if op.startswith("CUSTOM")], (name, half)
    expected = {"downscale": (["hr"], ["lr"]), "upscale": (["lr"], ["hr"])}[half]
    assert litert.signatures(path.read_bytes()) == {half: expected}, (name, half)


def test_flex_ops_are_refused():
  @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 1], tf.float32)])
  def needs_flex(x):  # ExtractImagePatches has no TFLite builtin, only a Flex kernel
    return tf.image.extract_patches(x, [1, 2, 2, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")

  converter = tf.lite.TFLiteConverter.from_concrete_functions([needs_flex.get_concrete_function()])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                         tf.lite.OpsSet.SELECT_TF_OPS]
  content = converter.convert()
  with pytest.raises(litert.NotBuiltinOpsError, match="CUSTOM:Flex"):
    litert.check_builtin_ops(content, "x.tflite")


def test_saved_model_cli_show_lists_both_signatures_with_dynamic_shapes(run):
  proc = subprocess.run([str(SAVED_MODEL_CLI), "show", "--all", "--dir",
                         str(run.out / "fgrn_x2" / "1")], capture_output=True, text=True,
                        env=ENV, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  text = proc.stdout
  for name, (key_in, key_out) in [("downscale", ("hr", "lr")), ("upscale", ("lr", "hr")),
                                  ("serving_default", ("lr", "hr"))]:
    block = text.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
    assert f"inputs['{key_in}']" in block and f"outputs['{key_out}']" in block, name
    assert block.count("dtype: DT_UINT8") == 2, name
    assert block.count("shape: (-1, -1, -1, 3)") == 2, name


def test_saved_model_cli_run_upscales_an_image(run, tmp_path):
  lr = smooth_images(3, [(12, 10)])[0][None]
  np.save(tmp_path / "lr.npy", lr)
  proc = subprocess.run([str(SAVED_MODEL_CLI), "run", "--dir", str(run.out / "fgrn_x2" / "1"),
                         "--tag_set", "serve", "--signature_def", "upscale", "--inputs",
                         f"lr={tmp_path / 'lr.npy'}", "--outdir", str(tmp_path / "out")],
                        capture_output=True, text=True, env=ENV, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  hr = np.load(tmp_path / "out" / "hr.npy")
  assert hr.shape == (1, 24, 20, 3) and hr.dtype == np.uint8
  assert np.abs(hr.astype(int) - run.keras.upscale(lr)).max() <= 1


def serve(loaded, request_bytes: bytes) -> bytes:
  """What TF Serving's Predict does with a serialized PredictRequest, on a loaded SavedModel."""
  from tensorflow_serving.apis import predict_pb2

  request = predict_pb2.PredictRequest.FromString(request_bytes)
  name = request.model_spec.signature_name or "serving_default"
  signature = loaded.signatures[name]
  outputs = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
  response = predict_pb2.PredictResponse()
  response.model_spec.CopyFrom(request.model_spec)
  response.model_spec.signature_name = name
  for key, value in outputs.items():
    response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
  return response.SerializeToString()


def test_predict_request_runs_against_the_signatures(run):
  from tensorflow_serving.apis import predict_pb2

  loaded = tf.saved_model.load(str(run.out / "fgrn_x2" / "1"))
  hr = np.stack(smooth_images(4, [(20, 24)] * 2))
  for signature, key_in, x, key_out, expected in [
      ("downscale", "hr", hr, "lr", run.keras.downscale(hr)),
      ("", "lr", hr[:, :10, :12], "hr", run.keras.upscale(hr[:, :10, :12]))]:  # default: up
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "fgrn_x2"
    request.model_spec.signature_name = signature
    request.inputs[key_in].CopyFrom(tf.make_tensor_proto(x))
    response = predict_pb2.PredictResponse.FromString(serve(loaded, request.SerializeToString()))
    assert response.model_spec.signature_name == (signature or "serving_default")
    assert list(response.outputs) == [key_out]
    assert response.outputs[key_out].dtype == tf.uint8.as_datatype_enum
    got = tf.make_ndarray(response.outputs[key_out])
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_tflite_lr_through_png_upscaled_by_saved_model_equals_keras(run, tmp_path):
  hr = smooth_images(5, [(36, 44)])[0]
  down = backends.load_backend(run.out / "tflite" / "float32" / "downscaler.tflite")
  images.write_image(tmp_path / "lr.png", down.downscale(hr[None])[0])
  lr = images.read_rgb8(tmp_path / "lr.png")
  sr = backends.load_backend(run.out, artifact="savedmodel").upscale(lr[None])[0]
  sr_keras = run.keras.upscale(run.keras.downscale(hr[None]))[0]
  assert sr.shape == sr_keras.shape == hr.shape
  # float32 TFLite is within one level of Keras (values that land on a rounding boundary); the
  # PNG is lossless, and the SavedModel upscales those LR bits exactly as Keras does.
  assert np.abs(lr.astype(int) - run.keras.downscale(hr[None])[0]).max() <= 1
  assert np.abs(sr.astype(int) - run.keras.upscale(lr[None])[0]).max() <= 1
  mse = np.mean((sr.astype(float) - sr_keras) ** 2)
  assert mse == 0 or 10 * np.log10(255**2 / mse) > 40, mse


def test_bad_input_fails_clearly(run):
  loaded = tf.saved_model.load(str(run.out / "fgrn_x2" / "1"))
  with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of the scale 2"):
    loaded.signatures["downscale"](hr=tf.zeros([1, 17, 16, 3], tf.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor"):
    loaded.signatures["upscale"](lr=tf.zeros([1, 8, 8, 3], tf.float32))
  for name in ("savedmodel", "tflite_float32"):
    backend = backends.load_backend(run.out, artifact=name)
    with pytest.raises(ValueError, match="multiples of the scale 2; received 17x16"):
      backend.downscale(np.zeros((1, 17, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="must be uint8"):
      backend.upscale(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
      backend.upscale(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("case", ["missing", "corrupt_weights"])
def test_export_main_fails_with_one_line_on_a_bad_workdir(tmp_path, case):
  wd = tmp_path / "wd"
  if case == "corrupt_weights":
    workdir.write_experiment(wd, config.smoke())
    (wd / workdir.BEST_WEIGHTS).write_bytes(b"not an HDF5 file")
  proc = export_cli("--workdir", wd, "--output_dir", tmp_path / "out", timeout=300)
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("export: error:"), proc.stderr[-2000:]
  assert str(wd) in lines[0]
  assert not (tmp_path / "out").exists()


def test_export_refuses_unknown_formats_and_a_non_empty_output_dir(tmp_path):
  with pytest.raises(export_lib.ExportError, match="unknown format.*tflite_int4"):
    export_lib.parse_formats("savedmodel,tflite_int4")
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "keep.txt").write_text("x")
  with pytest.raises(export_lib.ExportError, match="not empty"):
    export_lib.export(tiny_model(), tmp_path / "out", [], formats=["savedmodel"])
  assert (tmp_path / "out" / "keep.txt").read_text() == "x"


def test_full_int8_is_left_out_when_its_round_trip_loses_too_much(tmp_path):
  folder = tmp_path / "tflite" / "int8_full"
  folder.mkdir(parents=True)
  (folder / "upscaler.tflite").write_bytes(b"x")
  artifacts = {"tflite_int8_full": {
      "files": {"upscale": {"path": "tflite/int8_full/upscaler.tflite"}},
      "agreement": {"psnr_drop_db": 2.5}}}
  assert not export_lib.quality_gate(dict(artifacts), tmp_path, 3.0)
  assert folder.is_dir()
  assert export_lib.quality_gate(artifacts, tmp_path, 1.0) == ["tflite_int8_full"]
  assert "2.5 dB below Keras" in artifacts["tflite_int8_full"]["skipped"]
  assert not folder.exists() and "path" not in artifacts["tflite_int8_full"]["files"]["upscale"]
