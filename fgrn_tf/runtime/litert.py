"""Reading a .tflite file without running it: its ops, signatures and the fgrn metadata entry.

The export checks with `ops` that a converted half uses TFLite builtins only (what the stock
runtime on phones has), and the TFLite backend reads the half and the scale from `metadata`.
Parsing uses the flatbuffer schema that ships with `ai-edge-litert`, so neither needs
TensorFlow.
"""

from __future__ import annotations

import json

from fgrn_tf.errors import FGRNError

METADATA_NAME = "fgrn"

# Builtin ops that mean the weights stayed resource variables instead of constants: such a
# model reads uninitialised variables and outputs NaN without an error (docs/tf_notes.md, Export).
VARIABLE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})


class NotBuiltinOpsError(FGRNError, ValueError):
  """A .tflite model needs ops the stock TFLite runtime lacks, or holds unfrozen variables."""


def _schema():
  from ai_edge_litert import schema_py_generated

  return schema_py_generated


def enum_names(table) -> dict[int, str]:
  """{value: name} of one of the schema's enums (BuiltinOperator, TensorType, ...)."""
  return {v: k for k, v in vars(table).items() if not k.startswith("_")}


def _model(content: bytes):
  schema = _schema()
  if len(content) < 8 or content[4:8] != b"TFL3":
    raise ValueError("not a TFLite model (no TFL3 file identifier)")
  return schema.Model.GetRootAs(content, 0)


def ops(content: bytes) -> list[str]:
  """The distinct op names a model uses, sorted: builtin names (`CONV_2D`), custom op codes
  as written (Select-TF ops are custom ops named `Flex<TfOp>`) prefixed with `CUSTOM:`."""
  schema = _schema()
  model = _model(content)
  names = enum_names(schema.BuiltinOperator)
  found = set()
  for i in range(model.OperatorCodesLength()):
    code = model.OperatorCodes(i)
    # Codes above 127 live in BuiltinCode; older files keep small ones in the deprecated field.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
      found.add(f"CUSTOM:{(code.CustomCode() or b'?').decode()}")
    else:
      found.add(names.get(builtin, f"BUILTIN_{builtin}"))
  return sorted(found)


def check_builtin_ops(content: bytes, what: str) -> list[str]:
  """The model's ops; raises NotBuiltinOpsError naming the offending ones and why.

  Args:
    content: the .tflite bytes.
    what: how to name the model in the message (e.g. "upscaler.tflite (float16)").
  """
  found = ops(content)
  custom = [op for op in found if op.startswith("CUSTOM:")]
  if custom:
    raise NotBuiltinOpsError(
        f"{what} needs ops that are not TFLite builtins ({', '.join(custom)}); the stock "
        f"runtime on phones cannot run them (Select-TF/Flex ops are refused)")
  variables = sorted(VARIABLE_OPS.intersection(found))
  if variables:
    raise NotBuiltinOpsError(
        f"{what} holds resource variables ({', '.join(variables)}): the weights were not "
        f"frozen into the model and its outputs would be NaN (convert the exported SavedModel)")
  return found


def quantized_tensor_names(content: bytes) -> list[str]:
  """Names of the int8 / uint8 / int16 tensors that ops of the model write, in op order."""
  schema = _schema()
  model = _model(content)
  integer = {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16}
  names = []
  for g in range(model.SubgraphsLength()):
    graph = model.Subgraphs(g)
    for i in range(graph.OperatorsLength()):
      op = graph.Operators(i)
      for k in range(op.OutputsLength()):
        tensor = graph.Tensors(op.Outputs(k))
        if tensor.Type() in integer:
          names.append(tensor.Name().decode())
  return names


def signatures(content: bytes) -> dict[str, tuple[list[str], list[str]]]:
  """{signature key: (input names, output names)} of a model."""
  model = _model(content)
  out = {}
  for i in range(model.SignatureDefsLength()):
    sig = model.SignatureDefs(i)
    inputs = [sig.Inputs(j).Name().decode() for j in range(sig.InputsLength())]
    outputs = [sig.Outputs(j).Name().decode() for j in range(sig.OutputsLength())]
    out[sig.SignatureKey().decode()] = (inputs, outputs)
  return out


def metadata(content: bytes) -> dict | None:
  """The JSON the export stored under the `fgrn` metadata name, or None if absent."""
  model = _model(content)
  for i in range(model.MetadataLength()):
    entry = model.Metadata(i)
    if entry.Name() == METADATA_NAME.encode():
      data = model.Buffers(entry.Buffer()).DataAsNumpy()
      return json.loads(bytes(data).decode())
  return None


def with_metadata(content: bytes, info: dict) -> bytes:
  """A copy of the model with `info` stored as JSON under the `fgrn` metadata name.

  Rebuilds the flatbuffer with the schema's object API (as TFLite's own metadata writers do);
  ops, tensors, weights and signatures are carried over unchanged.
  """
  import flatbuffers

  schema = _schema()
  model = schema.ModelT.InitFromObj(_model(content))
  if any(b.offset for b in model.buffers or []):
    raise ValueError("models with external buffers (over 2 GB) are not supported")
  buffer = schema.BufferT()
  buffer.data = list(json.dumps(info, sort_keys=True).encode())
  model.buffers.append(buffer)
  entry = schema.MetadataT(name=METADATA_NAME, buffer=len(model.buffers) - 1)
  model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()]
  model.metadata.append(entry)
  builder = flatbuffers.Builder(len(content) + 4096)
  builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())
