"""sr-fetch-photos: downloads the free training photos and two held-out test sets (Debian packages, pinned by SHA-256).

  sr-fetch-photos --out_dir=tfrecords/free_photos
  sr-build-tfrecords --source=sample,dir:tfrecords/free_photos/images --val_fraction=0 --out_dir=...

See sr_keras/data/photos.py for the list, and OUT_DIR/CREDITS.md for each photo's author and licence.
"""

import collections
import os
import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail

_OUT_DIR = flags.DEFINE_string("out_dir", "tfrecords/free_photos", "Where images/ and CREDITS.md go.")


def main(argv):
    del argv
    from sr_keras.data import photos

    try:
        paths = photos.fetch_photos(_OUT_DIR.value)
    except photos.FetchError as e:
        fail(str(e))
    folders = collections.Counter(os.path.dirname(p) for p in paths)
    print(", ".join(f"{n} photos in {d}" for d, n in sorted(folders.items()))
          + f"; credits in {_OUT_DIR.value}/CREDITS.md")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
