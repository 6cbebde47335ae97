"""Requests to an FGRN served by TF Serving, and the images in its answers.

REST: `rest_body` is the JSON body of a `:predict` call to a bytes signature, each file as
{"b64": ...} under the signature's `_bytes` input (TF Serving's rule for binary values);
`rest_images` reads the files back from the answer (or raises ServingError with the server's
message). gRPC: `predict_request` and `response_images` do the same with the
`tensorflow-serving-api` protos. docs/serving.md shows what these build, and the tests check
that it does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from fgrn_tf.errors import FGRNError
from fgrn_tf.runtime.backends import BYTES_SIGNATURES

# Most gRPC clients refuse messages over 4 MB unless told otherwise: a PNG photo passes that.
GRPC_MESSAGE_BYTES = 256 << 20
GRPC_OPTIONS = (("grpc.max_send_message_length", GRPC_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", GRPC_MESSAGE_BYTES))


class ServingError(FGRNError):
  """The server answered with an error (its message, one line)."""


def _keys(signature: str) -> tuple[str, str]:
  try:
    return BYTES_SIGNATURES[signature]
  except KeyError:
    raise ValueError(f"{signature!r} is not a bytes signature; use one of "
                     f"{', '.join(BYTES_SIGNATURES)}") from None


def rest_body(files: Sequence[bytes], signature: str = "upscale_bytes") -> dict:
  """The JSON body of `POST /v1/models/<name>:predict` sending `files` to `signature`.

  Args:
    files: the encoded images (PNG, JPEG, BMP or WebP bytes), any sizes.
    signature: "downscale_bytes" or "upscale_bytes".
  """
  key_in, _ = _keys(signature)
  return {"signature_name": signature,
          "instances": [{key_in: {"b64": base64.b64encode(f).decode("ascii")}} for f in files]}


def rest_json(files: Sequence[bytes], signature: str = "upscale_bytes") -> str:
  """`rest_body` as the text sent (compact JSON)."""
  return json.dumps(rest_body(files, signature), separators=(",", ":"))


def rest_images(answer: dict | str) -> list[bytes]:
  """The files of a `:predict` answer: {"predictions": [{"b64": ...}, ...]}.

  Raises:
    ServingError: the answer is {"error": ...} (a refused image: INVALID_ARGUMENT's words).
  """
  if isinstance(answer, str):
    answer = json.loads(answer)
  if "error" in answer:
    raise ServingError(str(answer["error"]).splitlines()[0])
  # One named output: TF Serving lists its values without the name.
  return [base64.b64decode(p["b64"]) for p in answer["predictions"]]


def predict_request(files: Sequence[bytes], signature: str = "upscale_bytes",
                    model_name: str = "fgrn_x2"):
  """A gRPC `PredictRequest` sending `files` to `signature` of `model_name`."""
  from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
  from tensorflow_serving.apis import predict_pb2

  key_in, _ = _keys(signature)
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  request.inputs[key_in].CopyFrom(tensor_pb2.TensorProto(
      dtype=types_pb2.DT_STRING, string_val=list(files),
      tensor_shape=tensor_shape_pb2.TensorShapeProto(
          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(files))])))
  return request


def response_images(response, signature: str = "upscale_bytes") -> list[bytes]:
  """The files of a gRPC `PredictResponse` to `signature`."""
  _, key_out = _keys(signature)
  return list(response.outputs[key_out].string_val)
