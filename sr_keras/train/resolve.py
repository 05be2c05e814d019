"""A run's `TrainConfig`, resolved in one place from what the user asked: a preset, a named set of loss weights, a
generator architecture (a zoo model's, or a published size), flag overrides and the mixed-precision choice.

    cfg = resolve.train_config("sample_x4", overrides={"gan_steps": 100}, mixed_precision="none")

It imports no TensorFlow (sr-train resolves its flags before TensorFlow loads, so a bad flag fails fast). Two
choices are left to the run, because they depend on the machine it runs on: `mixed_precision="auto"` is decided
by the strategy (`distribute.auto_mixed_precision`, passed in as `auto_policy`), and a perceptual loss whose VGG
weights cannot be had falls back as `vgg_fallback` says (`loop.resolve_content_loss`, when training starts).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

from sr_keras.train import config


def train_config(preset: str, model: str = "srgan", scale: Optional[int] = None,
                 overrides: Mapping[str, object] = (), model_overrides: Mapping[str, object] = (),
                 generator: Optional[str] = None, init_from: Optional[str] = None,
                 loss_weights: Optional[str] = None, discriminator: Optional[str] = None,
                 degradation: Optional[str] = None, mixed_precision: str = "none",
                 auto_policy: Optional[Callable[[], Optional[str]]] = None) -> config.TrainConfig:
    """The preset with everything asked applied on top, in this order: `loss_weights` (a `config.LOSS_WEIGHTS`
    name), the generator (`model="compact"` is the SRGAN-family loop with the compact generator; `init_from`, a
    zoo name, takes its exact architecture), `model_overrides` (ModelConfig fields), `discriminator`
    ("default": the generator's own), `degradation` ("none": the LR stored in the shards), `overrides`
    (TrainConfig fields; None values are not set), and `mixed_precision` ("auto": `auto_policy()`, "none":
    float32, or a policy name).

    Raises:
      ValueError: an unknown preset, model, scale, weight set or policy, or a contradiction, in one line.
    """
    from sr_keras import zoo  # Here: the zoo's architectures are needed only when asked for.

    gan = model
    if gan == "compact":
        if generator not in (None, "compact"):
            raise ValueError(f"--model=compact trains the compact generator, not --generator={generator}")
        gan, generator = "srgan", "compact"
    cfg = config.get_preset(preset, gan, scale)
    if loss_weights:
        if loss_weights not in config.LOSS_WEIGHTS:
            raise ValueError(f"--loss_weights={loss_weights}: choose one of {', '.join(config.LOSS_WEIGHTS)}")
        cfg = dataclasses.replace(cfg, **config.LOSS_WEIGHTS[loss_weights])
    arch = cfg.model
    if generator or init_from:
        arch = zoo.generator_architecture(arch, generator, init_from, gan)
    arch = dataclasses.replace(arch, **{k: v for k, v in dict(model_overrides).items() if v is not None})
    if discriminator is not None:
        arch = dataclasses.replace(arch, discriminator="" if discriminator == "default" else discriminator)
    if degradation is not None:
        cfg = dataclasses.replace(cfg, degradation="" if degradation == "none" else degradation)
    cfg = dataclasses.replace(cfg, model=arch, **{k: v for k, v in dict(overrides).items() if v is not None})
    if mixed_precision == "auto":
        policy = auto_policy() if auto_policy else None
    elif mixed_precision == "none":
        policy = None
    elif mixed_precision in config.MIXED_PRECISIONS:
        policy = mixed_precision
    else:
        raise ValueError(f"--mixed_precision={mixed_precision}: choose auto, none or one of "
                         f"{', '.join(config.MIXED_PRECISIONS)}")
    return dataclasses.replace(cfg, mixed_precision=policy)
