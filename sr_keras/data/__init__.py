"""Data: sources, degradation, the TFRecord schema, the builder, distillation sets and the input pipeline."""

# How sr-build-tfrecords can build (named here, light, for flags and the training config).
BUILD_SCALES = (2, 3, 4, 8)
DEGRADATIONS = ("bicubic", "realistic")
