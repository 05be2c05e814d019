"""What both Beam jobs share (`sr-enhance` and `sr-build-tfrecords --beam_pipeline_options`): the options string,
in tfds's convention, and quiet logs. Importing this imports apache-beam (the `beam` extra)."""

from __future__ import annotations

import logging

# Beam's chatter that says nothing a user can act on: "apitools not found" (its GCP IO, on import), and
# RunInference's "Resource module is not available" on every batch (Beam imports `resource` together with its
# model manager, which needs PyTorch; Beam 2.77). Filtered here and on each worker, which imports this module.
_BEAM_NOISE = ("apitools not found", "Resource module is not available")


def _quiet(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_BEAM_NOISE)


logging.getLogger().addFilter(_quiet)

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402 - after the filter (import-time warning).


def pipeline_options(spec: str) -> PipelineOptions:
    """tfds's convention: "runner=DirectRunner,direct_num_workers=2" -> --runner=DirectRunner --direct_num_workers=2.
    Workers log warnings and errors only unless `default_sdk_harness_log_level` is given.

    Raises:
      ValueError: an entry that is not key=value.
    """
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    bad = [e for e in entries if "=" not in e or not e.split("=", 1)[0]]
    if not entries or bad:
        raise ValueError(f"--beam_pipeline_options={spec!r}: expected key=value pairs separated by commas, such as "
                         "runner=DirectRunner,direct_num_workers=2")
    keys = {e.split("=", 1)[0] for e in entries}
    quiet = [] if "default_sdk_harness_log_level" in keys else ["--default_sdk_harness_log_level=WARNING"]
    return PipelineOptions(flags=[f"--{e}" for e in entries] + quiet)
