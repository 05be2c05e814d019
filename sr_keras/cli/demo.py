"""`make demo`: the whole system, end to end, on the photos bundled with scikit-image (`sr_keras.release.demo`)."""

from __future__ import annotations

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs

_PRESET = flags.DEFINE_string("preset", "sample_x4", "Training preset (tiny for a smoke run).")
_DATA = flags.DEFINE_string("data_dir", "tfrecords/sample_x4", "Where the sample TFRecords go.")
_RUNS = flags.DEFINE_string("runs", "runs/demo", "Training workdirs.")
_EXPORT = flags.DEFINE_string("export_dir", "export", "Export base folder.")
_OUT = flags.DEFINE_string("out", "demo_out", "Evaluation and enhancement outputs.")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras.release import demo

    try:
        done = demo.run_demo(_PRESET.value, _DATA.value, _RUNS.value, _EXPORT.value, _OUT.value)
    except Exception as e:  # The demo is for newcomers: one line, then the details for a bug report.
        fail(f"demo failed: {type(e).__name__}: {e}")
    print(f"\n== {demo.STEPS}/{demo.STEPS} Results (measured by this run) ==", flush=True)
    print(demo.report(done, _RUNS.value))
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
