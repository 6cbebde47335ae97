"""Data: image reading, MATLAB bicubic, the training pipeline, built-in default images."""
