"""`make demo`: the main job on the bundled sample photos.

Builds the sample LR/HR TFRecords (x4) and prints their summary.
"""

import sys

from absl import app, flags

from sr_keras.cli_utils import fail, quiet_tf_logs

_OUT_DIR = flags.DEFINE_string("data_dir", "tfrecords/sample_x4", "Where the sample TFRecords go.")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras.data import builder

    print("== 1. Building LR/HR TFRecords from the photos bundled with scikit-image ==", flush=True)
    try:
        manifest = builder.build_tfrecords(builder.BuildConfig(source="sample", out_dir=_OUT_DIR.value))
    except builder.BuildError as e:
        fail(str(e))
    print(builder.summarize(manifest))
    print(f"manifest: {_OUT_DIR.value}/manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
