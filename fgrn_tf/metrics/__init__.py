"""Image quality metrics: `psnr_ssim` (Y-channel PSNR/SSIM), `niqe` and `piqe` (no reference).

Import from the modules (`from fgrn_tf.metrics.niqe import niqe`); the package re-exports
nothing, so a module and the function it is named for never shadow each other.
"""
