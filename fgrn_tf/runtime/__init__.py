"""Running a trained FGRN: Keras, SavedModel and TFLite behind one interface; the shipped models."""
