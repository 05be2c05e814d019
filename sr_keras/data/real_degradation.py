"""Real-ESRGAN's second-order degradation model (Wang et al., ICCVW 2021), on the fly in the tf.data pipeline.

    lr = degrade(hr, seed, REAL_ESRGAN, scale=4)     # float32 [h, w, 3] in [0, 1] -> [h/4, w/4, 3]

Twice: blur (isotropic or anisotropic Gaussian, generalised Gaussian, plateau, or 2-D sinc), random resize (up,
down or keep; area, bilinear or bicubic), Gaussian or Poisson noise (colour or grey), JPEG. Then resize to the
target size with a final sinc filter, and JPEG, in random order. The parameters are Real-ESRGAN's
`options/train_realesrgan_x4plus.yml` and `realesrgan/data/realesrgan_dataset.py` (xinntao/Real-ESRGAN, BSD-3-Clause),
and the kernels are BasicSR's `basicsr/data/degradations.py`. Every random draw comes from a stateless seed, so a
run is reproducible and a resumed run draws the same degradations.

Differences from the PyTorch original, all small: TF's resize kernels (bicubic a=-0.5, not -0.75); JPEG quality
rounded to an integer (DiffJPEG takes a float); borders of the blurs are normalised convolutions rather than reflect
padding (they also work on images smaller than the kernel). Real-ESRGAN's USM sharpening of the target is not
applied.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf
# The one JPEG encoder that takes its quality as a tensor.
from tensorflow.python.ops import gen_image_ops

KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
KERNEL_SIZE = 21  # Every kernel is padded to 21 x 21 (Real-ESRGAN's pad_to).
KERNEL_RANGE = tuple(range(7, 22, 2))  # Odd sizes 7 ... 21, drawn uniformly.
RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclasses.dataclass(frozen=True)
class Order:
    """One degradation order: blur, resize, noise, JPEG."""

    blur_prob: float
    kernel_prob: tuple  # Over KERNELS.
    sinc_prob: float
    blur_sigma: tuple
    betag_range: tuple
    betap_range: tuple
    resize_prob: tuple  # (up, down, keep).
    resize_range: tuple
    gaussian_noise_prob: float
    noise_range: tuple  # Gaussian sigma in 0..255 units.
    poisson_scale_range: tuple
    gray_noise_prob: float
    jpeg_range: tuple


@dataclasses.dataclass(frozen=True)
class SecondOrder:
    first: Order
    second: Order
    final_sinc_prob: float = 0.8


_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
REAL_ESRGAN = SecondOrder(
    first=Order(blur_prob=1.0, kernel_prob=_KERNEL_PROB, sinc_prob=0.1, blur_sigma=(0.2, 3.0), betag_range=(0.5, 4.0),
                betap_range=(1.0, 2.0), resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5),
                gaussian_noise_prob=0.5, noise_range=(1.0, 30.0), poisson_scale_range=(0.05, 3.0),
                gray_noise_prob=0.4, jpeg_range=(30, 95)),
    second=Order(blur_prob=0.8, kernel_prob=_KERNEL_PROB, sinc_prob=0.1, blur_sigma=(0.2, 1.5),
                 betag_range=(0.5, 4.0), betap_range=(1.0, 2.0), resize_prob=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
                 gaussian_noise_prob=0.5, noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5),
                 gray_noise_prob=0.4, jpeg_range=(30, 95)))
PRESETS = {"realesrgan": REAL_ESRGAN}


class _Draws:
    """Stateless uniform draws from one seed, each from its own sub-seed."""

    def __init__(self, seed, n: int = 96):
        self.seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n)
        self.i = 0

    def seed(self):
        s = self.seeds[self.i]
        self.i += 1
        return s

    def uniform(self, lo=0.0, hi=1.0):
        return tf.random.stateless_uniform([], self.seed(), lo, hi)

    def choice(self, probs) -> tf.Tensor:
        logits = tf.math.log(tf.constant([probs], tf.float32))
        return tf.cast(tf.random.stateless_categorical(logits, 1, self.seed())[0, 0], tf.int32)

    def odd_size(self):
        return tf.gather(KERNEL_RANGE, tf.random.stateless_uniform([], self.seed(), 0, len(KERNEL_RANGE), tf.int32))


def _grid():
    r = tf.range(-(KERNEL_SIZE // 2), KERNEL_SIZE // 2 + 1, dtype=tf.float32)
    yy, xx = tf.meshgrid(r, r, indexing="ij")
    return xx, yy


def _window(size):
    """1 inside the centred size x size window, 0 outside (kernels of smaller sizes, padded to 21)."""
    xx, yy = _grid()
    half = tf.cast(size // 2, tf.float32)
    return tf.cast((tf.abs(xx) <= half) & (tf.abs(yy) <= half), tf.float32)


def gaussian_family_kernel(kind, sigma_x, sigma_y, theta, beta, size):
    """BasicSR's bivariate (generalised / plateau) Gaussian kernels: kind 0 Gaussian, 1 generalised, 2 plateau."""
    xx, yy = _grid()
    kind = tf.convert_to_tensor(kind, tf.int32)
    sigma_x, sigma_y, theta, beta = (tf.cast(v, tf.float32) for v in (sigma_x, sigma_y, theta, beta))
    c, s = tf.cos(theta), tf.sin(theta)
    # Inverse covariance of R diag(sx^2, sy^2) R^T, applied to (x, y).
    u, v = c * xx + s * yy, -s * xx + c * yy
    q = tf.square(u) / tf.square(sigma_x) + tf.square(v) / tf.square(sigma_y)
    k = tf.switch_case(kind, [lambda: tf.exp(-0.5 * q), lambda: tf.exp(-0.5 * tf.pow(q, beta)),
                              lambda: 1.0 / (tf.pow(q, beta) + 1.0)])
    k *= _window(size)
    return k / tf.reduce_sum(k)


def sinc_kernel(cutoff, size):
    """BasicSR's circular_lowpass_kernel: a 2-D sinc (Bessel J1) low-pass of `cutoff` radians per pixel."""
    xx, yy = _grid()
    cutoff = tf.cast(cutoff, tf.float32)
    r = tf.sqrt(tf.square(xx) + tf.square(yy))
    safe_r = tf.where(r > 0, r, 1.0)
    k = tf.where(r > 0, cutoff * tf.math.special.bessel_j1(cutoff * safe_r) / (2 * math.pi * safe_r),
                 tf.square(cutoff) / (4 * math.pi))
    k *= _window(size)
    return k / tf.reduce_sum(k)


def _beta(d: _Draws, lo, hi):
    # BasicSR: half the draws below 1 (sharper tails), half above.
    return tf.cond(d.uniform() < 0.5, lambda: d.uniform(lo, 1.0), lambda: d.uniform(1.0, hi))


def random_kernel(d: _Draws, order: Order) -> dict:
    """The parameters and the 21 x 21 kernel of one blur (Real-ESRGAN's dataset-side kernel draw)."""
    size = d.odd_size()
    kind = d.choice(order.kernel_prob)
    sx = d.uniform(*order.blur_sigma)
    sy = tf.where(kind % 2 == 0, sx, d.uniform(*order.blur_sigma))  # iso kinds are even in KERNELS.
    theta = tf.where(kind % 2 == 0, 0.0, d.uniform(-math.pi, math.pi))
    family = kind // 2
    beta = tf.switch_case(family, [lambda: tf.constant(1.0), lambda: _beta(d, order.betag_range[0],
                                                                           order.betag_range[1]),
                                   lambda: _beta(d, order.betap_range[0], order.betap_range[1])])
    use_sinc = d.uniform() < order.sinc_prob
    lo = tf.where(size < 13, math.pi / 3, math.pi / 5)
    cutoff = d.uniform() * (math.pi - lo) + lo
    kernel = tf.cond(use_sinc, lambda: sinc_kernel(cutoff, size),
                     lambda: gaussian_family_kernel(family, sx, sy, theta, beta, size))
    return {"kernel": kernel, "size": size, "kind": tf.where(use_sinc, -1, kind), "sigma_x": sx, "sigma_y": sy,
            "beta": beta, "cutoff": cutoff}


def blur(image, kernel):
    """Convolves each channel with a 21 x 21 kernel, normalised at the borders (no padding artefacts)."""
    k = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    x = image[None]
    out = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME")
    norm = tf.nn.depthwise_conv2d(tf.ones_like(x[..., :1]), kernel[:, :, None, None], [1, 1, 1, 1], "SAME")
    return (out / norm)[0]


def resize(image, size, mode):
    size = tf.maximum(tf.cast(size, tf.int32), 1)
    return tf.switch_case(mode, [lambda m=m: tf.image.resize(image, size, m) for m in RESIZE_MODES])


def add_noise(d: _Draws, image, order: Order) -> tuple:
    """Gaussian (sigma in 0..255 units) or Poisson noise, grey with `gray_noise_prob`; returns (image, params)."""
    gaussian = d.uniform() < order.gaussian_noise_prob
    gray = d.uniform() < order.gray_noise_prob
    sigma = d.uniform(*order.noise_range)
    pscale = d.uniform(*order.poisson_scale_range)
    shape = tf.shape(image)
    s1, s2 = d.seed(), d.seed()

    def gaussian_noise():
        colour = tf.random.stateless_normal(shape, s1) * sigma / 255.0
        grey = tf.random.stateless_normal(tf.concat([shape[:2], [1]], 0), s1) * sigma / 255.0
        return tf.where(gray, tf.broadcast_to(grey, shape), colour)

    def poisson_noise():
        def of(x):
            x = tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0
            return tf.random.stateless_poisson(tf.shape(x), s2, x * 256.0, tf.float32) / 256.0 - x
        return tf.where(gray, tf.broadcast_to(of(tf.image.rgb_to_grayscale(image)), shape), of(image)) * pscale

    noise = tf.cond(gaussian, gaussian_noise, poisson_noise)
    return tf.clip_by_value(image + noise, 0.0, 1.0), {"gaussian": gaussian, "gray": gray, "sigma": sigma,
                                                       "poisson_scale": pscale}


def jpeg_round_trip(image, quality):
    """JPEG-compresses a float image in [0, 1] at `quality` (an int32 tensor) and decodes it with libjpeg's
    accurate integer IDCT. TF's default decoder (`tf.image.adjust_jpeg_quality`'s) uses the fast one, which
    darkens red and blue by about 1.2 uint8 levels per round trip: a model trained on it learns a colour cast."""
    pixels = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)
    encoded = gen_image_ops.encode_jpeg_variable_quality(pixels, quality)
    decoded = tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")
    return tf.reshape(tf.cast(decoded, tf.float32) / 255.0, tf.shape(image))


def jpeg(d: _Draws, image, order: Order) -> tuple:
    quality = tf.cast(tf.round(d.uniform(float(order.jpeg_range[0]), float(order.jpeg_range[1]))), tf.int32)
    return jpeg_round_trip(image, quality), quality


def _resize_factor(d: _Draws, order: Order):
    kind = d.choice(order.resize_prob)
    return tf.switch_case(kind, [lambda: d.uniform(1.0, order.resize_range[1]),
                                 lambda: d.uniform(order.resize_range[0], 1.0), lambda: tf.constant(1.0)])


def degrade_with_params(hr, seed, model: SecondOrder = REAL_ESRGAN, scale: int = 4) -> tuple:
    """(lr, params): `hr` float32 [h, w, 3] in [0, 1] -> lr [h // scale, w // scale, 3], rounded to 8 bits."""
    d = _Draws(seed)
    hr = tf.convert_to_tensor(hr, tf.float32)
    hw = tf.cast(tf.shape(hr)[:2], tf.float32)
    params, out = {}, hr
    for n, order in ((1, model.first), (2, model.second)):
        k = random_kernel(d, order)
        use_blur = d.uniform() < order.blur_prob
        out = tf.cond(use_blur, lambda o=out, k=k: blur(o, k["kernel"]), lambda o=out: o)
        factor = _resize_factor(d, order)
        # Order 1 resizes the image it has; order 2 resizes relative to the target size, as Real-ESRGAN does.
        base = tf.cast(tf.shape(out)[:2], tf.float32) if n == 1 else hw / scale
        out = resize(out, tf.floor(base * factor), d.choice((1 / 3, 1 / 3, 1 / 3)))
        out, noise = add_noise(d, out, order)
        out, quality = jpeg(d, out, order)
        params.update({f"blur{n}": tf.where(use_blur, k["kind"], -2), f"blur{n}_sigma_x": k["sigma_x"],
                       f"blur{n}_sigma_y": k["sigma_y"], f"blur{n}_size": k["size"], f"resize{n}": factor,
                       f"noise{n}_gaussian": noise["gaussian"], f"noise{n}_gray": noise["gray"],
                       f"noise{n}_sigma": noise["sigma"], f"noise{n}_poisson_scale": noise["poisson_scale"],
                       f"jpeg{n}": quality})
    target = tf.cast(tf.shape(hr)[:2] // scale, tf.int32)
    size = d.odd_size()
    cutoff = d.uniform(math.pi / 3, math.pi)
    use_sinc = d.uniform() < model.final_sinc_prob
    mode = d.choice((1 / 3, 1 / 3, 1 / 3))
    jpeg_first = d.uniform() < 0.5
    q_seed = tf.stack([d.seed()[0], d.seed()[1]])

    def resize_sinc(x):
        x = resize(x, target, mode)
        return tf.cond(use_sinc, lambda: blur(x, sinc_kernel(cutoff, size)), lambda: x)

    def final_jpeg(x):
        q = tf.cast(tf.round(tf.random.stateless_uniform([], q_seed, float(model.second.jpeg_range[0]),
                                                         float(model.second.jpeg_range[1]))), tf.int32)
        return jpeg_round_trip(x, q)

    out = tf.cond(jpeg_first, lambda: resize_sinc(final_jpeg(out)), lambda: final_jpeg(resize_sinc(out)))
    out = tf.round(tf.clip_by_value(out, 0.0, 1.0) * 255.0) / 255.0
    params.update({"final_sinc": use_sinc, "final_jpeg_first": jpeg_first})
    return tf.ensure_shape(out, [None, None, 3]), params


def degrade(hr, seed, model: SecondOrder = REAL_ESRGAN, scale: int = 4):
    """The LR image only (see `degrade_with_params`)."""
    return degrade_with_params(hr, seed, model, scale)[0]
