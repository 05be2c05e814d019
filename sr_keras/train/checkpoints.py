"""Restoring from a folder of checkpoints that may be damaged: the newest one that restores wins.

Used by `sr-train` to resume and by `sr-export --workdir`; a kill or a full disk can leave the newest checkpoint
truncated, and the ones before it must still be usable.
"""

from __future__ import annotations

import glob
import os

import tensorflow as tf
from absl import logging


class CheckpointError(RuntimeError):
    """None of the checkpoints in a folder restores. The message names each one's reason and the fix."""


def _checkpoint_prefixes(ckpt_dir: str) -> list:
    """Every checkpoint prefix in `ckpt_dir` (from the index files, so a damaged state file hides none), newest
    first."""
    found = {}
    for index in glob.glob(os.path.join(ckpt_dir, "ckpt-*.index")):
        _add(found, index[:-len(".index")])
    try:
        state = tf.train.get_checkpoint_state(ckpt_dir)
        listed = list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path] if state else []
    except Exception:  # noqa: BLE001 - a damaged `checkpoint` state file hides nothing: the index files count.
        listed = []
    for prefix in listed:  # Listed, even with its index file gone, so its loss is reported.
        _add(found, prefix if os.path.isabs(prefix) else os.path.join(ckpt_dir, prefix))
    return [found[n] for n in sorted(found, reverse=True)]


def _add(found: dict, prefix: str) -> None:
    number = prefix.rsplit("-", 1)[-1]
    if number.isdigit():
        found.setdefault(int(number), prefix)


def restore_newest_good(checkpoint: tf.train.Checkpoint, ckpt_dir: str) -> str:
    """Restores the newest checkpoint in `ckpt_dir` that restores completely; returns its prefix ("" if none).

    A damaged newest checkpoint (truncated, zeroed or missing data or index file) is reported in one line and the
    one before it is tried, and so on.

    Raises:
      CheckpointError: there are checkpoints, and none of them restores.
    """
    failures = []
    for prefix in _checkpoint_prefixes(ckpt_dir):
        try:
            status = checkpoint.restore(prefix)
            status.assert_existing_objects_matched()
            status.expect_partial()  # Callers may restore a part (sr-export reads only the EMA generator).
        except Exception as e:  # noqa: BLE001 - TF raises OpError, IndexError, ValueError... for damaged files.
            first = (getattr(e, "message", None) or str(e)).strip().splitlines()
            reason = f"{type(e).__name__}: {(first[0] if first else '')[:160]}"
            failures.append(f"{os.path.basename(prefix)} ({reason})")
            print(f"Checkpoint {prefix} does not restore ({reason}); trying the one before it", flush=True)
            continue
        if failures:
            logging.warning("skipped damaged checkpoints: %s", "; ".join(failures))
        return prefix
    if failures:
        raise CheckpointError(f"no checkpoint in {ckpt_dir} restores ({'; '.join(failures)}); move that folder away to "
                         "start the run over")
    return ""
