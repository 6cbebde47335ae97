"""Export for deployment: every artifact agrees with Keras, runs where it ships, fails clearly.

One export of a tiny model in every format, made by `export/export_main.py` run as a script from
the repo root (the `fgrn-export` tool), feeds most tests (about a minute of CPU on 2 cores).
"""

import errno
import json
import os
import pathlib
import stat
import sys
import types

import forked_tools
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from helpers import (
  CORRUPT_PNG,
  REFUSED_OUTPUTS,
  make_run,
  refusal_tree,
  smooth_images,
  snapshot,
  tiny_model,
)

from fgrn_tf import config, workdir
from fgrn_tf.data import images
from fgrn_tf.export import (
  ExportError,
  agreement,
  exporter,
  gpu_delegate,
  inputs,
  manifest,
  saved_model,
)
from fgrn_tf.runtime import backends, litert

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
pytestmark = pytest.mark.slow  # the shared export below takes ~1 min of CPU

# The float32 artifacts compute what Keras computes: at most 1 level of rounding difference.
EXACT = ("savedmodel", "tflite_float32")


def export_cli(*args, timeout=900, umask=-1):
  return forked_tools.run([sys.executable, "export/export_main.py", *map(str, args)], cwd=ROOT,
                          env=ENV, timeout=timeout, umask=umask)


def error_line(proc) -> str:
  """The one error line of a failed command (TF's own start-up lines aside)."""
  assert proc.returncode != 0, proc.stdout[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("export: error:")]
  assert len(errors) == 1, proc.stderr[-3000:]
  return errors[0]


@pytest.fixture(scope="module")
def run(every_format_export):
  return types.SimpleNamespace(**vars(every_format_export),
                               keras=backends.load_backend(every_format_export.wd))


def tflite_files(run):
  for name, a in run.manifest["artifacts"].items():
    for half, f in a.get("files", {}).items():
      yield name, half, run.out / f["path"]


def test_export_writes_serving_layout_tflite_pairs_and_manifest(run):
  m = run.manifest
  assert set(m["artifacts"]) == set(exporter.FORMATS)
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
        "half": half, "scale": 2, "format": name, "model_config": config.smoke().model.to_dict(),
        "objective": config.smoke().objective.to_dict()}
  for name in EXACT:
    a = m["artifacts"][name]["agreement"]
    assert a["downscale_max_abs_diff"] <= 1 and a["upscale_max_abs_diff"] <= 1, (name, a)
  assert all(name in run.stdout for name in exporter.FORMATS)


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
  # docs/tf_notes.md (Export): this conversion path keeps the weights as resource variables and the
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
    issues = gpu_delegate.issues(path.read_bytes())
    if name != "tflite_int8_full":  # integer I/O and kernels: NPU territory, not the GPU's
      assert issues == [], (name, half)
    assert run.manifest["artifacts"][name]["files"][half]["gpu_delegate_issues"] == issues


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
  proc = forked_tools.run([str(SAVED_MODEL_CLI), "show", "--all", "--dir",
                           str(run.out / "fgrn_x2" / "1")], env=ENV, timeout=300)
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
  proc = forked_tools.run([str(SAVED_MODEL_CLI), "run", "--dir", str(run.out / "fgrn_x2" / "1"),
                         "--tag_set", "serve", "--signature_def", "upscale", "--inputs",
                         f"lr={tmp_path / 'lr.npy'}", "--outdir", str(tmp_path / "out")],
                          env=ENV, timeout=300)
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
    # In Python, each signature is also the loaded object's function of the same name.
    half = getattr(loaded, signature or "upscale")(tf.constant(x))[key_out].numpy()
    np.testing.assert_array_equal(half, got)


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


@pytest.mark.parametrize("flag", ["--model", "--workdir"])  # --workdir: the earlier spelling
@pytest.mark.parametrize("case", ["missing", "corrupt_weights"])
def test_export_main_fails_with_one_line_on_a_bad_workdir(tmp_path, case, flag):
  wd = tmp_path / "wd"
  if case == "corrupt_weights":
    workdir.write_experiment(wd, config.smoke())
    (wd / workdir.BEST_WEIGHTS).write_bytes(b"not an HDF5 file")
  proc = export_cli(flag, wd, "--output_dir", tmp_path / "out", timeout=300)
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("export: error:"), proc.stderr[-2000:]
  assert str(wd) in lines[0]
  assert not (tmp_path / "out").exists()


def test_export_main_refuses_stray_arguments_and_unknown_flags_as_usage_errors(tmp_path):
  for args, word in [(["extra"], "unexpected arguments: extra"), (["--no_such_flag"], "no_such")]:
    proc = export_cli("--model", tmp_path / "wd", "--output_dir", tmp_path / "out", *args,
                      timeout=300)
    assert proc.returncode == 2 and word in error_line(proc), proc.stderr[-2000:]
  assert list(tmp_path.iterdir()) == []


def test_export_refuses_unknown_formats_and_a_non_empty_output_dir(tmp_path):
  with pytest.raises(ExportError, match="unknown format.*tflite_int4"):
    exporter.parse_formats("savedmodel,tflite_int4")
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "keep.txt").write_text("x")
  with pytest.raises(ExportError, match="not empty"):
    exporter.export(tiny_model(), tmp_path / "out", [], formats=["savedmodel"])
  assert (tmp_path / "out" / "keep.txt").read_text() == "x"


def test_full_int8_is_left_out_when_its_round_trip_loses_too_much(tmp_path):
  folder = tmp_path / "tflite" / "int8_full"
  folder.mkdir(parents=True)
  (folder / "upscaler.tflite").write_bytes(b"x")
  artifacts = {"tflite_int8_full": {
      "files": {"upscale": {"path": "tflite/int8_full/upscaler.tflite"}},
      "agreement": {"psnr_drop_db": 2.5}}}
  assert not agreement.quality_gate(dict(artifacts), tmp_path, 3.0)
  assert folder.is_dir()
  assert agreement.quality_gate(artifacts, tmp_path, 1.0) == ["tflite_int8_full"]
  assert "2.5 dB below Keras" in artifacts["tflite_int8_full"]["skipped"]
  assert not folder.exists() and "path" not in artifacts["tflite_int8_full"]["files"]["upscale"]


def test_export_skips_unreadable_check_and_training_images(run):
  # The default formats include int8_full, calibrated on the run's training folder, which holds
  # a file training skipped; the check folder holds one too.
  assert "tflite_int8_full" in run.manifest["artifacts"]
  assert run.manifest["check_set"]["images"] == ["c0.png", "c1.png", "c2.png"]
  skipped = [line for line in run.stdout.splitlines() if "skipping" in line]
  assert any("c3.png" in line for line in skipped), run.stdout
  assert any("t2_broken.png" in line for line in skipped), run.stdout


def test_unreadable_images_are_skipped_and_none_left_is_one_line(tmp_path):
  good = smooth_images(3, [(20, 24), (16, 16)])
  files = [tmp_path / "a_broken.png", tmp_path / "b.png", tmp_path / "c_empty.png",
           tmp_path / "d.png", tmp_path / "e_missing.png"]
  files[0].write_bytes(CORRUPT_PNG)
  files[2].write_bytes(b"")
  images.write_image(files[1], good[0])
  images.write_image(files[3], good[1])
  lines = []
  check = inputs.load_check_images(files, 2, limit=2, log=lines.append)
  assert [name for name, _ in check] == ["b.png", "d.png"]
  assert len(lines) == 2 and "a_broken.png" in lines[0] and "c_empty.png" in lines[1]
  calibration = inputs.load_calibration_images(files, 2, log=lines.append)
  assert [im.shape for im in calibration] == [(20, 24, 3), (16, 16, 3)]
  for load in (inputs.load_check_images, inputs.load_calibration_images):
    with pytest.raises(ExportError, match="no usable .* among 3 file") as info:
      load([files[0], files[2], files[4]], 2, log=lambda _: None)
    assert "\n" not in str(info.value) and "a_broken.png" in str(info.value)


def test_export_folder_follows_the_umask(run):
  # tempfile.mkdtemp makes an owner-only folder; under umask 022 a plain mkdir gives 0755 and
  # open() 0644, so the account TF Serving runs as can read the export.
  assert stat.S_IMODE(run.out.stat().st_mode) == 0o755
  found = list(run.out.rglob("*"))
  assert any(p.name == "saved_model.pb" for p in found)
  for p in found:
    assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p


def fake_export(path: pathlib.Path, extra: str | None = None):
  """A folder as a previous export leaves it (manifest, SavedModel and .tflite names)."""
  (path / "fgrn_x2" / "1" / "variables").mkdir(parents=True)
  (path / "fgrn_x2" / "1" / "saved_model.pb").write_bytes(b"pb")
  (path / "tflite" / "float32").mkdir(parents=True)
  (path / "tflite" / "float32" / "upscaler.tflite").write_bytes(b"tflite")
  (path / "manifest.json").write_text(json.dumps(
      {"format": manifest.MANIFEST_FORMAT, "model_name": "fgrn_x2", "version": 1,
       "artifacts": {}}))
  if extra:
    (path / extra).parent.mkdir(parents=True, exist_ok=True)
    (path / extra).write_text("mine")


REFUSED = {case: (folder, word) for case, (folder, word, _) in REFUSED_OUTPUTS.items()} | {
    # case: (what --output_dir is, a word the error line must hold)
    "an_export_with_a_file_added": ("old_export", "notes.txt"),
    "an_export_with_a_folder_added": ("old_export2", "tflite/mine"),
    "the_check_dir": ("check", "--check_dir"),
    "a_folder_holding_the_calibration_dir": ("calib", "--calibration_dir"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_overwrite_never_replaces_what_the_export_did_not_make(tmp_path, case):
  base = tmp_path / "base"
  photos = smooth_images(4, [(24, 24), (20, 28)])
  refusal_tree(base, photos)
  for i, image in enumerate(photos):
    images.write_image(base / "check" / f"c{i}.png", image)
    images.write_image(base / "calib" / "train" / f"t{i}.png", image)
  fake_export(base / "old_export", extra="notes.txt")
  fake_export(base / "old_export2", extra="tflite/mine/readme.txt")
  before = snapshot(tmp_path)
  output, word = REFUSED[case]
  proc = export_cli("--model", base / "run", "--output_dir", base / output, "--overwrite",
                    "--formats", "savedmodel", "--check_dir", base / "check",
                    "--calibration_dir", base / "calib" / "train", timeout=600)
  line = error_line(proc)
  assert word in line, line
  assert "wrote" not in proc.stdout
  assert snapshot(tmp_path) == before  # nothing deleted, nothing written, no staging left


def test_overwrite_replaces_a_previous_export_and_nothing_else(tmp_path):
  out = tmp_path / "out"
  fake_export(out)
  (tmp_path / "beside.txt").write_text("mine")
  check = [("r.png", smooth_images(5, [(16, 20)])[0])]
  with pytest.raises(ExportError, match="previous export.*--overwrite"):
    exporter.export(tiny_model(), out, check, formats=["savedmodel"], log=lambda _: None)
  written = exporter.export(tiny_model(), out, check, formats=["savedmodel"], overwrite=True,
                            log=lambda _: None)
  assert set(written["artifacts"]) == {"savedmodel"}
  # No old tflite/; the server's two files beside the SavedModel.
  assert sorted(p.name for p in out.iterdir()) == ["batching_parameters.txt", "fgrn_x2",
                                                  "manifest.json", "models.config"]
  assert (out / "fgrn_x2" / "1" / "saved_model.pb").stat().st_size > 100
  assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.txt", "out"]


def test_a_full_disk_is_reported_on_the_output_path_not_the_hidden_staging_one(
    tmp_path, monkeypatch):
  def full_disk(model, path, overwrite=False, **options):
    # Where TF's writer would be when the disk fills: inside the SavedModel's own staging.
    inner = pathlib.Path(path).parent / ".1.k2j4h6g8.tmp" / "variables"
    inner.mkdir(parents=True)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(inner / "variables.data"))

  monkeypatch.setattr(saved_model, "write", full_disk)
  out = tmp_path / "out"
  check = [("r.png", smooth_images(5, [(16, 20)])[0])]
  with pytest.raises(ExportError) as info:
    exporter.export(tiny_model(), out, check, formats=["savedmodel"], log=lambda _: None)
  assert str(info.value) == (f"{out}/fgrn_x2/1/variables/variables.data: "
                             f"{os.strerror(errno.ENOSPC)}")
  assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["config_not_json", "config_without_model", "corrupt_weights"])
def test_export_main_names_the_file_of_a_bad_config_or_weights(tmp_path, case):
  wd = tmp_path / "wd"
  make_run(wd, training_leftovers=False)
  bad = wd / (workdir.BEST_WEIGHTS if case == "corrupt_weights" else workdir.CONFIG)
  bad.write_bytes({"config_not_json": b"{model: 2", "config_without_model": b'{"train": {}}',
                   "corrupt_weights": b"not an HDF5 file"}[case])
  proc = export_cli("--model", wd, "--output_dir", tmp_path / "out", timeout=300)
  line = error_line(proc)
  assert f"{bad}:" in line, line
  assert not (tmp_path / "out").exists()
