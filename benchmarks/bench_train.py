"""Training benchmarks (not tests): adversarial train-step images/s on this machine.

    .venv/bin/python benchmarks/bench_train.py [--steps=5] [--out=benchmarks/out/train.json]

SRGAN: B=16, VGG54 content loss, 96x96 HR crops, batch 16 (VGG weights random: same FLOPs as ImageNet's).
DCGAN variant: 64 filters, 5 blocks, L1 content loss, same crops and batch.
Each is timed with synthetic in-memory batches and with the real reader (sample TFRecords), and with XLA and
mixed_bfloat16 variants on synthetic batches. All in one process, so ratios are meaningful.
"""

import dataclasses
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import write_results  # noqa: E402
from absl import app, flags  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per variant (after 2 warm-up steps).")
_OUT = flags.DEFINE_string("out", "benchmarks/out/train.json", "Where to write the figures.")
_MODELS = flags.DEFINE_list("models", ["srgan", "dcgan"], "Which GANs.")


def paper_config(kind: str, data: str):
    from sr_keras.train import config

    base = config.get_preset("celeba_x4", kind)
    return dataclasses.replace(base, data=data, vgg_weights="none", hr_crop=96, batch_size=16, eval_images=1)


def time_steps(cfg, dataset_fn, steps: int) -> float:
    import keras
    import tensorflow as tf

    from sr_keras.train import loop
    from sr_keras.train import state as train_state

    strategy = tf.distribute.get_strategy()
    with loop._precision_policy(cfg.mixed_precision):
        keras.utils.set_random_seed(0)
        state = train_state.TrainState(cfg, strategy)

        def fn(iterator):
            return state.trainer.train_step(iterator, phase=2)
        it = iter(strategy.distribute_datasets_from_function(dataset_fn))
        for _ in range(2):
            fn(it)
        start = time.perf_counter()
        for _ in range(steps):
            logs = fn(it)
        float(logs["g/total"])  # Waits for the last step.
        return steps * cfg.batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    import tensorflow as tf

    from sr_keras.data import builder, pipeline

    results = {}
    with tempfile.TemporaryDirectory() as data:
        builder.build_tfrecords(builder.BuildConfig(source="sample", out_dir=data, verbose=False))
        for kind in _MODELS.value:
            cfg = paper_config(kind, data)
            r = tf.random.stateless_uniform([16, 96, 96, 3], [1, 2])
            batch = (tf.image.resize(r, (24, 24), "bicubic", antialias=True), r)

            def synthetic(ctx):
                return tf.data.Dataset.from_tensors(batch).repeat()

            def reader(ctx, cfg=cfg):
                return pipeline.train_dataset(data, 96, 16, input_context=ctx, cache=True,
                                             crops_per_image=4)

            out = {}
            out["synthetic_fp32"] = time_steps(cfg, synthetic, _STEPS.value)
            out["reader_fp32"] = time_steps(cfg, reader, _STEPS.value)
            out["reader_cost_fraction"] = 1.0 - out["reader_fp32"] / out["synthetic_fp32"]
            for label, variant in (("synthetic_xla", {"jit_compile": True}),
                                   ("synthetic_bf16", {"mixed_precision": "mixed_bfloat16"})):
                try:
                    out[label] = time_steps(dataclasses.replace(cfg, **variant), synthetic, _STEPS.value)
                except Exception as e:  # Report, don't hide: e.g. an op XLA cannot compile on this CPU.
                    out[label] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            results[kind] = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
            print(kind, json.dumps(results[kind]), flush=True)
    results["unit"] = "images/s (GAN phase train step, batch 16, 96x96 HR crops)"
    write_results(_OUT.value, results)


if __name__ == "__main__":
    sys.exit(app.run(main))
