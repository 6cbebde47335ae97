"""What the FGRN paper (Li et al., BMVC 2021) and the bicubic baseline report: one copy for all.

Evaluation reports, model cards and `info` compare against these; they were trained on
DIV2K + Flickr2K with 5e5 GPU steps (the paper's setup), which the CPU-trained models here are
not, so every table that shows them says so.
"""

from __future__ import annotations

# (method, scale) -> dataset -> (PSNR dB, SSIM) on Y, border = scale. Bicubic as published in
# the SR / rescaling literature; FGRN from the paper's Table 1.
PSNR_SSIM = {
    ("bicubic", 2): {"Set5": (33.66, 0.9299), "Set14": (30.24, 0.8688),
                     "BSD100": (29.56, 0.8431), "Urban100": (26.88, 0.8403)},
    ("bicubic", 4): {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027),
                     "BSD100": (25.96, 0.6675), "Urban100": (23.14, 0.6577)},
    ("fgrn", 2): {"Set5": (44.15, 0.9902), "Set14": (42.28, 0.9840), "BSD100": (41.87, 0.9887),
                  "Urban100": (41.71, 0.9904), "DIV2K": (45.08, 0.9917)},
    ("fgrn", 4): {"Set5": (36.97, 0.9505), "Set14": (33.77, 0.9168), "BSD100": (31.83, 0.8907),
                  "Urban100": (31.91, 0.9253), "DIV2K": (35.15, 0.9322)},
}
# The paper's Table 2: NIQE / PIQE of the LR images.
LR_NIQE_PIQE = {
    ("bicubic", 2): {"Set5": (16.027, 38.561), "Set14": (8.519, 39.802),
                     "BSD100": (5.282, 32.494), "Urban100": (5.708, 42.788)},
    ("bicubic", 4): {"Set5": (18.876, 51.101), "Set14": (17.932, 45.335)},
    ("fgrn", 2): {"Set5": (16.166, 30.124)},
    ("fgrn", 4): {"Set5": (18.876, 40.627)},
}
# Parameter counts the paper gives for its networks.
PARAMETERS = {2: 1.33e6, 4: 3.35e6}
SETUP = "GPUs, DIV2K+Flickr2K, 5e5 steps"
