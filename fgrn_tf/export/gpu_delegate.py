"""Making the .tflite halves fit TFLite's GPU delegate, and checking that they do.

TF 2.19 emptied the GPU check of `tf.lite.experimental.Analyzer` (tensorflow/tensorflow#77042):
with `gpu_compatibility=True` it prints "looks compatible" for any model, TOPK_V2 included, so
it cannot fail. `issues` applies the rules of the delegate's own compatibility checker
(`tensorflow/lite/tools/versioning/gpu_compatibility.cc`, which the Analyzer used to run) to
the ops FGRN's halves can contain, and refuses every op it has no rule for.

What the converter writes for FGRN breaks two of those rules: ROUND (no GPU kernel; the
network now rounds with FLOOR(x + 0.5), `fgrn_tf.models.quantize.round_half_up`) and the uint8
CASTs at the input and the output (the delegate casts only between float32 and int32, and
bool). `uint8_io_as_quantize` swaps those two CASTs for DEQUANTIZE and QUANTIZE with scale 1
and zero point 0, which compute the same values: every uint8 maps to the same float, and the
output, already an integer in [0, 255] when it reaches the op, maps back to the same byte.
"""

from __future__ import annotations

import numpy as np

from fgrn_tf.runtime.litert import _schema, enum_names

# Ops with no conditions in the delegate's checker, and those that need exactly one runtime
# input (unary) or one or two operands, one of which may be constant (binary).
_FREE = frozenset({"CONCATENATION", "SPLIT", "SPLIT_V", "PACK", "RELU", "RELU6", "LEAKY_RELU",
                   "PRELU", "RELU_N1_TO_1"})
_UNARY = frozenset({"ABS", "COS", "ELU", "EXP", "FLOOR", "LOG", "LOGISTIC", "NEG", "RSQRT",
                    "SIN", "SQRT", "SQUARE", "TANH", "HARD_SWISH"})
_BINARY = frozenset({"DIV", "MAXIMUM", "MINIMUM", "SUB", "POW", "SQUARED_DIFFERENCE",
                     "FLOOR_DIV", "FLOOR_MOD"})
_ONE_RUNTIME_INPUT = frozenset({"DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "TILE", "RESHAPE",
                                "TRANSPOSE", "AVERAGE_POOL_2D", "MAX_POOL_2D", "QUANTIZE",
                                "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "PAD"})
_GPU_CAST_PAIRS = {("FLOAT32", "FLOAT32"), ("FLOAT32", "INT32"), ("INT32", "FLOAT32"),
                   ("INT32", "INT32"), ("BOOL", "FLOAT32"), ("BOOL", "FLOAT16"),
                   ("FLOAT32", "BOOL"), ("FLOAT16", "BOOL")}


def _model(content: bytes):
  return _schema().ModelT.InitFromPackedBuf(content, 0)


def _op_name(model, op) -> str:
  code = model.operatorCodes[op.opcodeIndex]
  return enum_names(_schema().BuiltinOperator)[max(code.builtinCode, code.deprecatedBuiltinCode)]


def _pack(model) -> bytes:
  import flatbuffers

  builder = flatbuffers.Builder(1024)
  builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())


def _opcode(model, name: str, version: int) -> int:
  """The index of op `name` among the model's operator codes (appended when absent)."""
  schema = _schema()
  builtin = getattr(schema.BuiltinOperator, name)
  for i, code in enumerate(model.operatorCodes):
    if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
      return i
  code = schema.OperatorCodeT()
  code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
  model.operatorCodes.append(code)
  return len(model.operatorCodes) - 1


def _unit_scale():
  q = _schema().QuantizationParametersT()
  q.scale, q.zeroPoint = np.array([1.0], np.float32), np.array([0], np.int64)
  return q


def uint8_io_as_quantize(content: bytes) -> bytes:
  """`content` with its uint8 input CAST as DEQUANTIZE and its uint8 output CAST as QUANTIZE.

  The I/O tensors stay uint8 (they gain scale 1, zero point 0); nothing else changes. A model
  without such CASTs comes back unchanged.
  """
  schema = _schema()
  model = _model(content)
  uint8, float32 = schema.TensorType.UINT8, schema.TensorType.FLOAT32
  changed = False
  for graph in model.subgraphs:
    inputs, outputs = set(graph.inputs.tolist()), set(graph.outputs.tolist())
    for op in graph.operators:
      if _op_name(model, op) != "CAST":
        continue
      src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
      if op.inputs[0] in inputs and src.type == uint8 and dst.type == float32:
        op.opcodeIndex, src.quantization = _opcode(model, "DEQUANTIZE", 1), _unit_scale()
      elif op.outputs[0] in outputs and src.type == float32 and dst.type == uint8:
        op.opcodeIndex, dst.quantization = _opcode(model, "QUANTIZE", 1), _unit_scale()
      else:
        continue
      op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.NONE, None
      changed = True
  return _pack(model) if changed else content


def issues(content: bytes) -> list[str]:
  """Why TFLite's GPU delegate would not take each op of `content` (empty: it takes them all).

  The rules are those of the delegate's checker for the ops it names (counts of runtime and
  constant inputs, CAST types, STRIDED_SLICE masks and ranks, block sizes), plus the
  delegate's limit of 4 dimensions per tensor. A tensor is constant when it has data, or is the
  DEQUANTIZE of one (float16 weights, which the delegate reads as constants).
  """
  schema = _schema()
  model = _model(content)
  types = enum_names(schema.TensorType)
  found = []
  for g, graph in enumerate(model.subgraphs):
    const = {i for i, t in enumerate(graph.tensors)
             if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)}
    for op in graph.operators:
      if _op_name(model, op) == "DEQUANTIZE" and op.inputs[0] in const:
        const.add(op.outputs[0])
    for k, op in enumerate(graph.operators):
      name = _op_name(model, op)
      ins = [i for i in op.inputs.tolist() if i >= 0]
      runtime = [i for i in ins if i not in const]
      why = _rule(name, op, graph, runtime, ins, types)
      ranks = [len(graph.tensors[i].shape) for i in ins + op.outputs.tolist()
               if graph.tensors[i].shape is not None]
      if why is None and ranks and max(ranks) > 4:
        why = f"tensors of {max(ranks)} dimensions (the delegate takes at most 4)"
      if why:
        found.append(f"subgraph {g} op {k} {name}: {why}")
  return found


def _rule(name, op, graph, runtime, ins, types) -> str | None:
  def dtype(i):
    return types[graph.tensors[i].type]

  if name in _FREE:
    return None
  if name in _UNARY:
    return None if len(runtime) == 1 and len(ins) == 1 else "needs exactly one runtime input"
  if name in _BINARY:
    return None if (len(ins), len(runtime)) in ((2, 2), (2, 1)) else "needs 1 or 2 operands"
  if name in ("ADD", "MUL"):
    return None if len(ins) == 2 else "needs exactly 2 inputs"
  if name in _ONE_RUNTIME_INPUT:
    if len(runtime) != 1:
      return f"needs exactly one runtime input, has {len(runtime)}"
    if name in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH") and op.builtinOptions.blockSize <= 1:
      return "block size must be > 1"
    return None
  if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
    return None if len(runtime) <= 2 and len(op.outputs) == 1 else "at most 2 runtime inputs"
  if name == "DEQUANTIZE":
    return None if dtype(ins[0]) != "INT16" else "int16 input"
  if name == "CAST":
    pair = (dtype(ins[0]), dtype(op.outputs[0]))
    return None if pair in _GPU_CAST_PAIRS else f"CAST {pair[0]} -> {pair[1]} has no GPU kernel"
  if name == "STRIDED_SLICE":
    o = op.builtinOptions
    if o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask:
      return "ellipsis, new-axis and shrink-axis masks are not supported"
    rank = len(graph.tensors[ins[0]].shape)
    return None if len(ins) >= 4 and rank in (3, 4) else "needs 4 inputs and a 3D or 4D tensor"
  if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
    return None if len(runtime) == 1 else "axes must be constant"
  return "no GPU kernel for this op"
