"""sr_keras: super-resolution GANs (SRGAN and a DCGAN variant) in TensorFlow / Keras 3."""

__version__ = "0.1.0"
