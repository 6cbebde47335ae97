"""Training: the resumable fit, its callbacks, recipe checks."""
