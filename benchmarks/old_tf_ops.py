"""Records which ops (and their attributes) an older TensorFlow has, for tests/test_serving_ops.py's check that
every op sr-export writes exists in it: so TF Serving of that version (built on the same TensorFlow) loads our
exports. Run with that TensorFlow, in its own venv (it cannot live beside TF 2.21):

    python3 -m venv /tmp/tf216 && /tmp/tf216/bin/pip install tensorflow-cpu==2.16.2
    /tmp/tf216/bin/python benchmarks/old_tf_ops.py tests/fixtures/tf_2_16_ops.json [EXPORT_VERSION_DIR ...]

With export folders, it also loads each in that TensorFlow and runs its serving_default signature on a small PNG
(the end-to-end form of the same check).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402


def registered_ops() -> dict:
    out = {}
    for name in dir(tf.raw_ops):
        op = op_def_registry.get(name)
        if op is not None:
            out[name] = sorted(a.name for a in op.attr)
    return out


def main(out_path, *exports):
    ops = registered_ops()
    with open(out_path, "w") as f:
        json.dump({"tensorflow": tf.__version__, "ops": ops}, f, indent=0, sort_keys=True)
    print(f"{len(ops)} ops of TensorFlow {tf.__version__} -> {out_path}")
    png = tf.io.encode_png(tf.cast(tf.random.uniform([24, 32, 3], 0, 255, seed=0), tf.uint8))
    for path in exports:
        sig = tf.saved_model.load(path).signatures["serving_default"]
        out = sig(image_bytes=tf.reshape(png, [1]))["sr_png_bytes"]
        print(f"{path}: serving_default ran in TensorFlow {tf.__version__}: {tf.io.decode_png(out[0]).shape}")


if __name__ == "__main__":
    main(*sys.argv[1:])
