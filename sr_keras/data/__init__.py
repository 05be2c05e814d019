"""Data: sources, degradation, the TFRecord schema, the builder and the input pipeline."""
