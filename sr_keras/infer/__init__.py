"""Inference: resolving a model reference, the runtimes (SavedModel, Keras, ONNX, LiteRT) and the Enhancer (tiling, self-ensemble)."""
