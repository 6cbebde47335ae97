"""Export of a trained FGRN for deployment: SavedModel for TF Serving, .tflite halves for phones."""
