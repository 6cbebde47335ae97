"""How far one output pixel of FGRN's downscale or upscale reaches into its input (Li et al.,
BMVC 2021, Fig. 2: Gd, F, F^-1, Gu), which is the overlap tiles need to give the untiled result."""

from __future__ import annotations

# Context (LR pixels per side) assumed for backends that do not carry their model config
# (SavedModel, TFLite): enough for the paper's x2 (42 down / 33 up) and x4 (48 / 39) networks.
DEFAULT_MARGINS = (50, 50)


def flow_reach(cells: int, inverse: bool, channels: int = 3, block: int = 5) -> int:
  """How far (LR pixels) F or F^-1 spreads a change, channel by channel.

  See flow.FlowCell: cell k's pivot is channel k mod 3; each dense block is 5 convolutions.

  Args:
    cells: flow cells in F.
    inverse: F^-1 (the upscale side) rather than F.
    channels: LR channels the cells split.
    block: 3x3 convolutions in one dense block.

  Returns:
    The reach in LR pixels.
  """
  r = [0] * channels
  for k in (reversed(range(cells)) if inverse else range(cells)):
    pivot, others = k % channels, [j for j in range(channels) if j != k % channels]
    if not inverse:  # l1 += a(l2); l2 = l2 * exp(b(l1)) + p(l1)
      r[pivot] = max(r[pivot], max(r[j] for j in others) + block)
    for j in others:  # (both directions) l2 from b(l1) and p(l1)
      r[j] = max(r[j], r[pivot] + block)
    if inverse:  # l1 -= a(l2)
      r[pivot] = max(r[pivot], max(r[j] for j in others) + block)
  return max(r)


def receptive_margins(config) -> tuple[int, int]:
  """LR pixels of context each side that one output pixel of `downscale` / `upscale` reads.

  Every 3x3 convolution adds one LR pixel: Gd has head, 2 per ResBlock and tail (the box
  average and the squeeze add none); Gu has head, 2 per ResBlock, body_end and tail; F and F^-1
  add what `flow_reach` finds. `tests/test_tiling.py` checks these are exact.

  Args:
    config: a `ModelConfig`.

  Returns:
    (down, up) margins in LR pixels (paper x2: 42 and 33; x4: 48 and 39).
  """
  down, up = 2 + 2 * config.down_blocks, 3 + 2 * config.up_blocks
  if config.uses_flow:
    down += flow_reach(config.flow_cells, inverse=False)
    up += flow_reach(config.flow_cells, inverse=True)
  return down, up


def model_config_of(backend):
  """The `ModelConfig` a backend carries (a Keras model's, or an export's metadata), or None."""
  found = getattr(backend, "model_config", None)
  return found if found is not None else getattr(getattr(backend, "model", None),
                                                 "model_config", None)


def margins(config) -> tuple[int, int]:
  """`receptive_margins` of `config`, or DEFAULT_MARGINS when the model's config is not known."""
  return DEFAULT_MARGINS if config is None else receptive_margins(config)


def margins_for(backend) -> tuple[int, int]:
  """`margins` of the model a backend runs."""
  return margins(model_config_of(backend))


def min_tile(scale: int, config) -> int:
  """The smallest tile (HR pixels) for a model of `scale` and `config` (None: not known):
  windows of 3 margins, so each tile's kept centre is at least as large as its overlaps."""
  return scale * 3 * max(margins(config))
