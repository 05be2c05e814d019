"""Network interpolation (ESRGAN, Wang et al. 2018, section 3.4): a generator whose weights are
(1 - alpha) * PSNR-oriented + alpha * GAN-trained, trading distortion (PSNR) for perceptual quality continuously.

Both generators must share an architecture (the GAN phase starts from the pixel phase's generator). Every weight is
blended, BatchNorm moving statistics included, as ESRGAN's `net_interp.py` does.
"""

from __future__ import annotations

import keras
import numpy as np

from sr_keras.image.limits import check_alpha


def blend(psnr_weights: list, gan_weights: list, alpha: float) -> list:
    """(1 - alpha) * psnr + alpha * gan, weight by weight (numpy arrays or tensors)."""
    if len(psnr_weights) != len(gan_weights):
        raise ValueError(f"the generators differ: {len(psnr_weights)} vs {len(gan_weights)} weights")
    return [(1.0 - alpha) * p + alpha * g for p, g in zip(psnr_weights, gan_weights)]


def interpolated_generator(psnr: keras.Model, gan: keras.Model, alpha: float) -> keras.Model:
    """A new Keras generator with the blended weights of `psnr` and `gan` (same architecture)."""
    alpha = check_alpha(alpha)
    out = keras.models.clone_model(gan)
    out.set_weights([np.asarray(w, dtype=np.asarray(g).dtype) for w, g in
                     zip(blend(psnr.get_weights(), gan.get_weights(), alpha), gan.get_weights())])
    return out
