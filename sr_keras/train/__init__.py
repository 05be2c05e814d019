"""Training: config and presets, the loop, run state, the adversarial step, losses, validation, the run folder, checkpoints, distribution, curves."""
