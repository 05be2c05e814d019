"""Networks ("archs"): SRGAN, the DCGAN variant, and the zoo's SPAN, RRDBNet and SRVGGNetCompact, one file each;
their one registry (`registry`), `build_generator` and `build_discriminator` (`build`), their light config (`config`), shared
layers, the loss networks and the VGG19 feature extractor.

`build_generator` and `build_discriminator` are reached from here lazily, so `sr_keras.models.config` can be
imported without TensorFlow.
"""

from sr_keras.models.config import KINDS  # noqa: F401 - part of this API.


def __getattr__(name: str):
    if name in ("build_generator", "build_discriminator"):
        from sr_keras.models import build  # TensorFlow, only when a network is built.

        return getattr(build, name)
    raise AttributeError(f"module 'sr_keras.models' has no attribute {name!r}")
