"""sr_keras: super-resolution GANs (SRGAN and a DCGAN variant) in TensorFlow / Keras 3.

    import sr_keras
    model = sr_keras.load("export/srgan")     # or a version folder, a .keras file, or nothing: the default model
    big = model.enhance(image)                # numpy (uint8/uint16/float; gray, RGB, RGBA) or PIL
"""

__version__ = "0.1.0"


_DEFAULT = object()


def load(path=None, tile=None, tile_overlap=None, precision="float32", self_ensemble=False,
         max_input_pixels=_DEFAULT):
    """Loads a model for `enhance()`; see `sr_keras.inference.load`. Imported lazily (TensorFlow is heavy).

    `max_input_pixels` (default 36 MP; None for no limit) refuses larger inputs before any work.
    """
    from sr_keras import inference

    kwargs = {k: v for k, v in (("tile", tile), ("tile_overlap", tile_overlap)) if v is not None}
    if max_input_pixels is not _DEFAULT:
        kwargs["max_input_pixels"] = max_input_pixels
    return inference.load(path, precision=precision, self_ensemble=self_ensemble, **kwargs)
