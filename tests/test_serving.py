"""The SavedModel's bytes signatures as TF Serving runs them: encoded images in and out, the
CLI's pixels (tiles, gray, alpha, 16 bits, records), bad requests refused while the model keeps
serving, and the files TF Serving needs beside it.

One export of a tiny model with random weights (SavedModel only, tile 144, a small pixel cap),
made by `fgrn-export` in its own process; this process loads it as the server does
(`tf.saved_model.load`) and feeds it requests converted the way the server converts them.
"""

import base64
import json
import os
import pathlib
import re
import subprocess
import sys
import types

import cv2
import forked_tools
import numpy as np
import pytest
import tensorflow as tf
from helpers import photo, randomize_zero_convs, write_model_dir

import fgrn_tf
from fgrn_tf import workdir
from fgrn_tf.data import images, pngtext
from fgrn_tf.export import server_config
from fgrn_tf.runtime import serving_requests
from fgrn_tf.runtime.backends import BYTES_SIGNATURES

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
TILE = 144  # the smoke model's smallest: 72 LR cells a window, 24 of margin
CAP = 3_000_000  # HR pixels: what the gRPC test's 2.8 MP answer needs, and a header can pass
pytestmark = pytest.mark.slow  # the export (~20 s of CPU) and the CLI's pass over the images


def png_header(height: int, width: int, depth: int = 8) -> bytes:
  """The first bytes of a PNG claiming `height` x `width`: a header and no image data."""
  ihdr = (width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, 2, 0, 0, 0]))
  import zlib
  return (pngtext.SIGNATURE + len(ihdr).to_bytes(4, "big") + b"IHDR" + ihdr
          + zlib.crc32(b"IHDR" + ihdr).to_bytes(4, "big"))


def decoded(data: bytes) -> np.ndarray:
  """A file's pixels as OpenCV reads them (channels, depth and all)."""
  return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  base = tmp_path_factory.mktemp("serving")
  wd, check, out = base / "workdir", base / "check", base / "out"
  write_model_dir(wd, seed=5)
  model = workdir.load_model(wd)
  randomize_zero_convs(model, seed=5)  # every part of the network shapes the output
  model.save_weights(wd / workdir.BEST_WEIGHTS)
  images.write_image(check / "c.png", photo(40, 48, seed=9))
  proc = forked_tools.run(
      [sys.executable, "export/export_main.py", "--model", str(wd), "--output_dir", str(out),
       "--check_dir", str(check), "--formats", "savedmodel", "--tile", str(TILE),
       "--max_pixels", str(CAP)], cwd=ROOT, env=ENV, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  sm_dir = out / "fgrn_x2" / "1"
  # Pictures as users send them: sizes that are not multiples of the scale and span 2 x 2
  # windows, gray, RGBA at 16 bits, 16-bit RGB, a JPEG.
  pictures = {"rgb.png": photo(201, 183, seed=1), "gray.png": photo(150, 157, seed=2)[..., 0],
              "rgba16.png": photo(90, 101, seed=3, channels=4, dtype=np.uint16),
              "rgb16.png": photo(64, 70, seed=4, dtype=np.uint16)}
  hr_dir = base / "hr"
  for name, pixels in pictures.items():
    images.write_image(hr_dir / name, pixels)
  for name, pixels in (("photo.jpg", photo(120, 96, seed=6)), ("photo.webp", photo(60, 74, seed=7)),
                       ("photo.bmp", photo(50, 46, seed=8))):
    (hr_dir / name).write_bytes(images.encode(name, pixels))
  # What the command-line tool writes for them, through the Python API (the tool's batch code)
  # on the same export, with the same tile.
  rescaler = fgrn_tf.load(str(out), tile=TILE)
  names = sorted(p.name for p in hr_dir.iterdir())
  rescaler.downscale([str(hr_dir / n) for n in names], base / "cli_lr")
  lr_names = sorted(p.name for p in (base / "cli_lr").iterdir())
  rescaler.upscale([str(base / "cli_lr" / n) for n in lr_names], base / "cli_hr")
  return types.SimpleNamespace(
      # The tool's backend loaded the SavedModel as the server does: its signatures serve here.
      out=out, sm_dir=sm_dir, loaded=rescaler.backend.loaded, names=names,
      hr={n: (hr_dir / n).read_bytes() for n in names}, base=base, rescaler=rescaler,
      cli_lr={n: (base / "cli_lr" / n).read_bytes() for n in lr_names},
      cli_hr={n: (base / "cli_hr" / n).read_bytes() for n in lr_names},
      manifest=json.loads((out / "manifest.json").read_text()))


# ---- what TF Serving does with a request -----------------------------------------------------


def serve(loaded, request_bytes: bytes):
  """TF Serving's Predict on a serialized PredictRequest: (status, PredictResponse or message).

  As the server: the signature by name (default serving_default), each input TensorProto made
  a tensor, a failing run answered with its status and message, the model still loaded.
  """
  from tensorflow_serving.apis import predict_pb2

  request = predict_pb2.PredictRequest.FromString(request_bytes)
  name = request.model_spec.signature_name or "serving_default"
  signature = loaded.signatures[name]
  try:
    outputs = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
  except tf.errors.InvalidArgumentError as e:
    return "INVALID_ARGUMENT", server_message(e)
  response = predict_pb2.PredictResponse()
  response.model_spec.CopyFrom(request.model_spec)
  response.model_spec.signature_name = name
  for key, value in outputs.items():
    response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
  return "OK", response


def server_message(error) -> str:
  """The status message the server answers with. TF's Python runtime heads the error of a
  function it called with where the error was detected ("Graph execution error:", "Detected at
  node ...", its stack or "<stack traces unavailable>"); the server's C++ runtime does not."""
  lines = error.message.splitlines()
  if lines[:1] != ["Graph execution error:"]:
    return error.message
  rest = lines[1:]
  while rest and (not rest[0].strip() or rest[0].startswith(("Detected at node", "<stack traces"))
                  or rest[0].startswith(" ")):
    rest = rest[1:]
  return "\n".join(rest)


def rest_predict(loaded, body: str) -> str:
  """TF Serving's REST `:predict` on a JSON body in the row ("instances") format: {"b64": ...}
  values become bytes, and an output whose alias ends in `_bytes` goes back as {"b64": ...}."""
  request = json.loads(body)
  signature = loaded.signatures[request.get("signature_name", "serving_default")]
  instances = request["instances"]
  columns = {k: [base64.b64decode(i[k]["b64"]) for i in instances] for k in instances[0]}
  try:
    outputs = signature(**{k: tf.constant(v, tf.string) for k, v in columns.items()})
  except tf.errors.InvalidArgumentError as e:
    return json.dumps({"error": server_message(e)})
  (key, value), = outputs.items()  # one named output: its values are listed without the name
  assert key.endswith("_bytes")
  return json.dumps({"predictions": [{"b64": base64.b64encode(v).decode()}
                                     for v in value.numpy()]})


def call(served, files, signature):
  """Sends `files` to `signature` as a gRPC client would; returns (status, files or message)."""
  request = serving_requests.predict_request(files, signature, "fgrn_x2")
  status, answer = serve(served.loaded, request.SerializeToString())
  if status != "OK":
    return status, answer
  return status, serving_requests.response_images(answer, signature)


# ---- the tests -------------------------------------------------------------------------------


def test_bytes_signatures_give_the_cli_files_pixel_for_pixel(served):
  # One request holds every picture, sizes and formats mixed; each is done on its own.
  status, lrs = call(served, [served.hr[n] for n in served.names], "downscale_bytes")
  assert status == "OK", lrs
  assert len(lrs) == len(served.names)
  status, hrs = call(served, lrs, "upscale_bytes")
  assert status == "OK", hrs
  for name, lr, hr in zip(served.names, lrs, hrs, strict=True):
    assert lr.startswith(pngtext.SIGNATURE) and hr.startswith(pngtext.SIGNATURE)
    if not name.endswith(".png"):  # the tool writes the LR in the input's format: arrays
      rgb = images.read_rgb8(served.base / "hr" / name)
      np.testing.assert_array_equal(decoded(lr)[..., ::-1], served.rescaler.downscale(rgb))
      np.testing.assert_array_equal(decoded(hr)[..., ::-1],
                                    served.rescaler.upscale(decoded(lr)[..., ::-1]))
      continue
    np.testing.assert_array_equal(decoded(lr), decoded(served.cli_lr[name]), err_msg=name)
    for path, data in (("served.png", lr), ("cli.png", served.cli_lr[name])):
      (served.base / path).write_bytes(data)
    assert (pngtext.read_text(served.base / "served.png")
            == pngtext.read_text(served.base / "cli.png")), name  # the HR size and the scale
    np.testing.assert_array_equal(decoded(hr), decoded(served.cli_hr[name]), err_msg=name)
  shapes = {n: decoded(h).shape for n, h in zip(served.names, hrs, strict=True)}
  assert shapes["rgb.png"] == (201, 183, 3)  # cropped back to the recorded HR size
  assert shapes["gray.png"] == (150, 157)
  assert decoded(hrs[served.names.index("rgba16.png")]).dtype == np.uint16
  assert shapes["rgba16.png"] == (90, 101, 4)


def test_tiles_meet_without_seams(served):
  # 101 x 92 LR cells are 2 x 2 windows of 72: the served tiles against one whole-image run.
  lr = decoded(served.cli_lr["rgb.png"])[..., ::-1]
  whole = served.loaded.signatures["upscale"](lr=tf.constant(lr[None]))["hr"].numpy()[0]
  status, (hr,) = call(served, [images.encode("x.png", lr)], "upscale_bytes")
  assert status == "OK"
  assert np.abs(decoded(hr)[..., ::-1].astype(int) - whole).max() <= 1


def test_bad_requests_are_refused_one_sentence_each_and_the_model_keeps_serving(served):
  good = served.hr["rgb.png"]
  expected = decoded(served.cli_lr["rgb.png"])
  gif = b"GIF89a" + bytes(26)
  recorded_x4 = pngtext.add_text(images.encode("x.png", photo(20, 20)),
                                 {"fgrn:hr-size": "80x80", "fgrn:scale": "4"})
  cases = [
      ("downscale_bytes", [b"not an image at all"], "image 1 of 1 is not a PNG, JPEG, BMP or "
                                                    "WebP file"),
      ("downscale_bytes", [good, b""], "image 2 of 2 is empty"),
      ("downscale_bytes", [], "the request holds no images"),
      ("upscale_bytes", [gif], "GIF is refused"),
      ("upscale_bytes", [served.cli_lr["gray.png"][:200]], "PNG"),  # the decoder's words
      ("downscale_bytes", [png_header(100_000, 100_000)],
       "100000x100000 = 10000000000 pixels, over the cap of 3000000 this model"),
      ("upscale_bytes", [png_header(1000, 1000)],
       "1000x1000 and would upscale to 2000x2000 = 4000000 pixels, over the cap of 3000000"),
      ("downscale_bytes", [images.encode("x.png", photo(1, 9))], "smaller than the scale 2"),
      ("upscale_bytes", [recorded_x4], "made by an x4 model (fgrn:scale=4), but the model is x2"),
  ]
  for signature, files, words in cases:
    status, message = call(served, files, signature)
    assert status == "INVALID_ARGUMENT", (signature, words)
    assert words in message, (words, message)
    status, (lr,) = call(served, [good], "downscale_bytes")
    assert status == "OK" and np.array_equal(decoded(lr), expected), words
  # Wrong dtypes: a uint8 batch to a bytes signature, strings to a uint8 one.
  from tensorflow_serving.apis import predict_pb2

  for signature, key, value in [("downscale_bytes", "hr_bytes", np.zeros([1, 4, 4, 3], np.uint8)),
                                ("upscale", "lr", np.array([good], object))]:
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = signature
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    status, message = serve(served.loaded, request.SerializeToString())
    assert status == "INVALID_ARGUMENT" and "expected to be a" in message, message
  status, (lr,) = call(served, [good], "downscale_bytes")
  assert status == "OK" and np.array_equal(decoded(lr), expected)


def test_rest_bodies_carry_b64_both_ways(served):
  files = [served.hr["gray.png"], served.hr["photo.jpg"]]
  body = serving_requests.rest_json(files, "downscale_bytes")
  assert json.loads(body)["instances"][0] == {
      "hr_bytes": {"b64": base64.b64encode(files[0]).decode()}}
  lrs = serving_requests.rest_images(rest_predict(served.loaded, body))
  assert lrs == call(served, files, "downscale_bytes")[1]
  refused = rest_predict(served.loaded, serving_requests.rest_json([b"x"], "upscale_bytes"))
  with pytest.raises(serving_requests.ServingError, match="is not a PNG, JPEG, BMP or WebP"):
    serving_requests.rest_images(refused)


DOC = ROOT / "docs" / "serving.md"


def test_the_documented_rest_body_is_the_helpers_and_is_served(served):
  text = DOC.read_text()
  body = re.search(r"^(\{\"signature_name\":\"upscale_bytes\".*\})$", text, re.M).group(1)
  (png,) = [base64.b64decode(i["lr_bytes"]["b64"]) for i in json.loads(body)["instances"]]
  assert body == serving_requests.rest_json([png], "upscale_bytes")
  (hr,) = serving_requests.rest_images(rest_predict(served.loaded, body))
  assert decoded(hr).shape[:2] == tuple(2 * d for d in decoded(png).shape[:2])
  # The shell line of the curl example builds the same body from a file.
  line = re.search(r"^BODY=(.*)$", text, re.M).group(1)
  (served.base / "photo_lr.png").write_bytes(png)
  shell = subprocess.run(["bash", "-c", f"BODY={line}; printf %s \"$BODY\""],
                         cwd=served.base, capture_output=True, text=True, check=True)
  assert shell.stdout == body


def test_the_bytes_signatures_take_and_give_string_vectors(served):
  for name, (key_in, key_out) in BYTES_SIGNATURES.items():
    signature = served.loaded.signatures[name]
    (spec,) = signature.structured_input_signature[1].values()
    assert (spec.name, spec.dtype, spec.shape.as_list()) == (key_in, tf.string, [None])
    (out,) = signature.structured_outputs.items()
    assert (out[0], out[1].dtype, out[1].shape.as_list()) == (key_out, tf.string, [None])


def test_saved_model_cli_runs_the_bytes_signatures(served, tmp_path):
  # Fixed-width bytes need no pickle; numpy drops trailing NULs, which no PNG ends with.
  np.save(tmp_path / "lr.npy", np.array([served.cli_lr["rgb.png"], served.cli_lr["gray.png"]]))
  run = forked_tools.run([str(SAVED_MODEL_CLI), "run", "--dir", str(served.sm_dir), "--tag_set",
                        "serve", "--signature_def", "upscale_bytes", "--inputs",
                        f"lr_bytes={tmp_path / 'lr.npy'}", "--outdir", str(tmp_path / "o")],
                         env=ENV, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  got = np.load(tmp_path / "o" / "hr_bytes.npy", allow_pickle=True)
  for data, name in zip(got, ("rgb.png", "gray.png"), strict=True):
    np.testing.assert_array_equal(decoded(bytes(data)), decoded(served.cli_hr[name]))


def test_export_writes_the_server_files_and_records_the_options(served):
  from google.protobuf import text_format
  from tensorflow_serving.config import model_server_config_pb2

  config = text_format.Parse((served.out / server_config.MODELS_CONFIG).read_text(),
                             model_server_config_pb2.ModelServerConfig())
  (entry,) = config.model_config_list.config
  assert (entry.name, entry.base_path, entry.model_platform) == (
      "fgrn_x2", "/models/fgrn_x2", "tensorflow")
  params = text_format.Parse((served.out / server_config.BATCHING_PARAMETERS).read_text(),
                             batching_parameters_message()())
  assert params.num_batch_threads.value == 1 and params.batch_timeout_micros.value == 0
  assert params.max_batch_size.value == server_config.MAX_BATCH
  sm = served.manifest["artifacts"]["savedmodel"]
  assert sm["serving"] == {"tile": TILE, "max_pixels": CAP, "lr_format": "png",
                           "lr_encoder": "TensorFlow encode_png", "scale": 2}
  assert sm["server_files"] == list(server_config.FILES)
  assert set(BYTES_SIGNATURES) <= set(sm["signatures"])
  assert "at most 3000000 HR pixels" in served.manifest["bytes_inputs"]["upscale_bytes"][
      "constraint"]


def batching_parameters_message():
  """TF Serving's BatchingParameters (session_bundle_config.proto, fields 1-4), which the
  tensorflow-serving-api wheel does not carry, built from its field numbers."""
  from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

  pool = descriptor_pool.DescriptorPool()
  for module in (wrappers_pb2,):
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    pool.Add(proto)
  proto = descriptor_pb2.FileDescriptorProto(name="batching.proto", package="t", syntax="proto3",
                                             dependency=["google/protobuf/wrappers.proto"])
  message = proto.message_type.add(name="BatchingParameters")
  for number, name in enumerate(("max_batch_size", "batch_timeout_micros",
                                 "max_enqueued_batches", "num_batch_threads"), 1):
    message.field.add(name=name, number=number, type=11, label=1,
                      type_name=".google.protobuf.Int64Value")
  pool.Add(proto)
  return message_factory.GetMessageClass(pool.FindMessageTypeByName("t.BatchingParameters"))


def test_a_jpeg_lr_is_the_png_path_through_tfs_encoder(served):
  from fgrn_tf.export.bytes_signatures import ServingOptions, downscale_bytes

  model = workdir.load_model(served.base / "workdir")
  # In a graph, as served: run eagerly, the network's sums round a level apart now and then.
  fn = tf.function(downscale_bytes(model, ServingOptions(TILE, CAP, "jpeg:90")))
  files = [served.hr["rgb.png"], served.hr["gray.png"]]
  jpegs = fn(tf.constant(files))["lr_bytes"].numpy()
  for jpeg, name in zip(jpegs, ("rgb.png", "gray.png"), strict=True):
    assert jpeg.startswith(b"\xff\xd8\xff")
    lossless = decoded(served.cli_lr[name])
    expected = tf.io.encode_jpeg(lossless[..., ::-1] if lossless.ndim == 3 else lossless[..., None],
                                 quality=90).numpy()
    assert jpeg == expected, name  # gray stays gray; the pixels are the PNG path's


def test_export_refuses_bad_serving_flags_in_one_line(tmp_path):
  for args, words in [(["--quality", "80"], "--quality needs --lr_format jpeg"),
                      (["--tile", "100"], "--tile 100 is too small for this model (x2)")]:
    proc = forked_tools.run([sys.executable, "export/export_main.py", "--model",
                           str(write_model_dir(tmp_path / "wd")), "--output_dir",
                           str(tmp_path / "out"), "--formats", "savedmodel", *args],
                            cwd=ROOT, env=ENV, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("export: error:")]
    assert len(errors) == 1 and words in errors[0], proc.stderr[-2000:]


def test_the_documented_grpc_client_runs_against_a_grpc_server(served, tmp_path, monkeypatch):
  # A real gRPC server whose Predict is `serve`: the page's client code, options and all, with
  # a response larger than gRPC's default 4 MB limit.
  from concurrent import futures

  import grpc
  from tensorflow_serving.apis import prediction_service_pb2_grpc

  class Predictor(prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):  # noqa: N802 (the proto's name)
      status, answer = serve(served.loaded, request.SerializeToString())
      if status != "OK":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, answer)
      return answer

  server = grpc.server(futures.ThreadPoolExecutor(1), options=[
      ("grpc.max_send_message_length", 1 << 30), ("grpc.max_receive_message_length", 1 << 30)])
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Predictor(), server)
  port = server.add_insecure_port("localhost:0")
  server.start()
  try:
    block = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.M | re.S)
    (client,) = [b for b in block if "stub.Predict" in b]
    monkeypatch.chdir(tmp_path)
    # Noise does not compress: its 5 MB PNG answer needs the raised receive limit.
    noise = np.random.default_rng(0).integers(0, 256, (700, 1000, 3), np.uint8)
    pathlib.Path("photo_lr.png").write_bytes(images.encode("x.png", noise))
    exec(compile(client.replace("localhost:8500", f"localhost:{port}"), "serving.md", "exec"),
         {})
    sr = pathlib.Path("photo_sr.png").read_bytes()
    assert len(sr) > 4 << 20 and decoded(sr).shape == (1400, 2000, 3)
  finally:
    server.stop(None)
