"""Rescaling image files: pictures (alpha, gray, 16 bit), tiling, the batch runner, the commands."""
