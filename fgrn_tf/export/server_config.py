"""What TF Serving needs beside the SavedModel: `models.config` and `batching_parameters.txt`.

Both are protobuf text files (ModelServerConfig and BatchingParameters) that
`tensorflow_model_server --model_config_file=... --enable_batching
--batching_parameters_file=...` reads; docs/serving.md shows the command lines.
"""

from __future__ import annotations

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
FILES = (MODELS_CONFIG, BATCHING_PARAMETERS)
# Where the official container mounts models (docker run -v EXPORT:/models).
DEFAULT_BASE = "/models"
# The most images one batch (one request, or requests merged) may hold: a request of more is
# refused by the server, before it reaches the model.
MAX_BATCH = 8
# Batches run one at a time: the tiled bytes signatures already use every core on one image,
# and a second batch in flight would double the memory a burst of large photos takes.
BATCH_THREADS = 1
MAX_ENQUEUED_BATCHES = 16


def models_config(model_name: str, base: str = DEFAULT_BASE) -> str:
  """The model_config_list serving `model_name` from `<base>/<model_name>` (its versions)."""
  path = f"{base.rstrip('/') or ''}/{model_name}"
  return (f"# Written by fgrn-export: the TF Serving model list (--model_config_file).\n"
          f"model_config_list {{\n"
          f"  config {{\n"
          f"    name: \"{model_name}\"\n"
          f"    base_path: \"{path}\"\n"
          f"    model_platform: \"tensorflow\"\n"
          f"  }}\n"
          f"}}\n")


def batching_parameters(scale: int, max_pixels: int) -> str:
  """BatchingParameters suited to FGRN: no waiting to merge, one batch at a time."""
  return (f"# Written by fgrn-export for an x{scale} FGRN (--batching_parameters_file, with\n"
          f"# --enable_batching). The tiled bytes signatures run the images of a batch one\n"
          f"# after another, each on every core: merging requests gains no speed, so nothing\n"
          f"# waits to merge (timeout 0), and one batch runs at a time, which bounds the memory\n"
          f"# of a burst of requests to one image in flight (each at most {max_pixels} HR\n"
          f"# pixels). Requests to the uint8 signatures merge only when their images share a\n"
          f"# size (TF Serving concatenates them); send photos to the bytes signatures.\n"
          f"max_batch_size {{ value: {MAX_BATCH} }}\n"
          f"batch_timeout_micros {{ value: 0 }}\n"
          f"max_enqueued_batches {{ value: {MAX_ENQUEUED_BATCHES} }}\n"
          f"num_batch_threads {{ value: {BATCH_THREADS} }}\n")
