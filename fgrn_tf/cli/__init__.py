"""The fgrn-tf command-line tools: one module of absl flags per tool (import one per process)."""
