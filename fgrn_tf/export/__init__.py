"""Export of a trained FGRN for deployment (SavedModel, .tflite halves) and shipping it to models/.

`exporter.export` writes and checks an export folder (`folders` guards and swaps it,
`inputs` reads the model and check images, `agreement` compares every artifact with Keras,
`manifest` records it); `shipper.ship` packs a run as a shipped model; `model_card` writes its
MODEL_CARD.md. The tools are `fgrn_tf.cli.export`, `fgrn_tf.cli.ship`, `fgrn_tf.cli.model_card`.
"""

from fgrn_tf.errors import FGRNError


class ExportError(FGRNError):
  """The export (or ship) cannot be made or failed its checks (one line for the user)."""
