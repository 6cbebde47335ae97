"""TensorFlow settings read from the environment when TF starts; entry points apply them first.

`TF_CPU_ALLOCATOR_USE_BFC=true`: TF's default CPU allocator hands each large tensor back to the
system when it dies, so the next one of that size page-faults its memory in again. FGRN's flow
makes many short-lived full-resolution tensors (dense-block features), and on the 2-core CI
machine the BFC allocator, which keeps and reuses them, made a 512x512 x2 round trip 19% faster
(4.17 -> 3.39 s) and an elementwise add of a 34 MB tensor 2.1x faster (BENCHMARKS.md). The price is
memory the allocator keeps: peak RSS of an untiled 4-megapixel round trip 2506 -> 3391 MiB,
tiled (1024) 1241 -> 1488 MiB. A value already set in the environment wins, so
`TF_CPU_ALLOCATOR_USE_BFC=false` restores TF's default.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TF's C++ INFO/WARNING lines hide our own messages
    "TF_CPU_ALLOCATOR_USE_BFC": "true",
}


def set_defaults() -> None:
  """Sets each of `DEFAULTS` not already in the environment; call before importing TF."""
  for key, value in DEFAULTS.items():
    os.environ.setdefault(key, value)
