"""Bulk enhancement as an Apache Beam pipeline: `sr-enhance --beam_pipeline_options=runner=DirectRunner,...`.

    inputs (listed with tf.io.gfile: local, gs://, s3:// where installed)
      -> Reshuffle (spread over workers)
      -> RunInference(EnhanceHandler)   each worker loads the model once, through `sr_keras.load` (Beam's own
                                        TensorFlow handler loads with `tf.keras.models.load_model`, which Keras 3
                                        refuses for a SavedModel), and runs `enhance_lib.enhance_file` per input
      -> a JSON-lines report (`REPORT`) and counters (written, skipped, failed)

The outputs are the plain CLI's: the same names, pixels, skip-existing rule and limits, each written atomically. A
file that fails is counted and reported and never stops the job. On a filesystem other than the local one, each
input is copied to a local temporary, enhanced there, and each output copied to a temporary name beside its
final place and renamed (an object store publishes an object whole).
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
import uuid
from typing import Optional

import apache_beam as beam  # noqa: E402, I001
from apache_beam.ml.inference.base import ModelHandler, RunInference  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from sr_keras.enhance import files as enhance_lib
from sr_keras.enhance.output import OutputFormat
from sr_keras.image.imageio import IMAGE_EXTENSIONS
from sr_keras.infer import enhancer as enhancer_lib
from sr_keras.utils.beam_options import pipeline_options  # noqa: F401, I001 - part of this API; first: quiets Beam.

REPORT = "sr_enhance_report.jsonl"  # One line per input: {"input", "status", "why", "outputs"}.
NAMESPACE = "sr_keras"  # Of the job's counters: written, skipped, failed.


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def list_inputs(spec: str) -> list:
    """A file, a folder (recursively, image extensions only) or a glob, on any filesystem tf.io.gfile knows."""
    if is_local(spec):
        return enhance_lib.expand_inputs(spec.removeprefix("file://"))
    # Here, not at the top: TensorFlow's filesystems (gs://, s3://) are only needed for remote inputs.
    import tensorflow as tf

    if tf.io.gfile.isdir(spec):
        return sorted(posixpath.join(d, f) for d, _, files in tf.io.gfile.walk(spec) for f in files
                      if f.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(p for p in tf.io.gfile.glob(spec) if not tf.io.gfile.isdir(p))


def output_names(paths: list, suffix) -> dict:
    """`enhance_lib.output_names` for local paths; for URLs, the same rule on the part after the bucket."""
    if all(is_local(p) for p in paths):
        return enhance_lib.output_names(paths, suffix)
    keys = {p: "/" + p.split("://", 1)[1] for p in paths}
    by_key = enhance_lib.output_names(list(keys.values()), suffix)
    return {p: by_key[k] for p, k in keys.items()}


class EnhanceHandler(ModelHandler):
    """A RunInference model handler whose model is an `inference.Enhancer` and whose examples are input paths;
    each result is the report record of one input."""

    def __init__(self, model: Optional[str], load_kwargs: dict, output_dir: str, names: dict, options: dict):
        super().__init__()
        self._model, self._load_kwargs, self._output_dir = model, load_kwargs, output_dir
        self._names, self._options = names, options

    def load_model(self):
        # Here, not at the top: the model (and TensorFlow) loads on each worker, not where the job is built.


        return enhancer_lib.load(self._model, **self._load_kwargs)

    def batch_elements_kwargs(self):
        return {"max_batch_size": 1}  # One photo at a time: the Enhancer tiles it.

    def run_inference(self, batch, model, inference_args=None):
        return [self._one(model, path) for path in batch]

    def _one(self, enhancer, path: str) -> dict:
        name = self._names.get(path)
        try:
            if name is None:
                return self._record(path, "skipped", "an sr-enhance output; not enhanced again", [])
            if is_local(path) and is_local(self._output_dir):
                status, why, files = enhance_lib.enhance_file(enhancer, path.removeprefix("file://"),
                                                              self._output_dir.removeprefix("file://"), name,
                                                              own=enhance_lib.is_own_output(path), **self._options)
            else:
                status, why, files = self._remote(enhancer, path, name)
        except Exception as e:  # Any fault of one input is that input's failure; the job goes on.
            status, why, files = "failed", f"{type(e).__name__}: {e}", []
        return self._record(path, status, why, files)

    @staticmethod
    def _record(path: str, status: str, why: str, files: list) -> dict:
        beam.metrics.Metrics.counter(NAMESPACE, "written" if status == "note" else status).inc()
        return {"input": path, "status": status, "why": why, "outputs": files}

    def _remote(self, enhancer, path: str, name: str) -> tuple:
        # Here, not at the top: tf.io.gfile reaches gs://, s3:// and the other filesystems TensorFlow has.
        import tensorflow as tf

        gfile = tf.io.gfile
        overwrite = self._options.get("overwrite", False)
        final_stem = posixpath.join(self._output_dir, name)
        stage = tempfile.mkdtemp(prefix="sr_keras_beam_")
        try:
            local_in = os.path.join(stage, "in", posixpath.basename(path))
            os.makedirs(os.path.dirname(local_in))
            gfile.copy(path, local_in)
            if not overwrite:  # Skip before any work when an output of any format is there.
                for ext in ("png", "jpg", "webp"):
                    if gfile.exists(f"{final_stem}.{ext}"):
                        return "skipped", f"{final_stem}.{ext} {enhance_lib._EXISTS}", []
            local_out = os.path.join(stage, "out")
            os.makedirs(local_out)
            status, why, files = enhance_lib.enhance_file(enhancer, local_in, local_out, posixpath.basename(name),
                                                          own=enhance_lib.is_own_output(local_in), **self._options)
            published = []
            for f in files:
                final = posixpath.join(posixpath.dirname(final_stem), os.path.basename(f))
                gfile.makedirs(posixpath.dirname(final))
                temp = f"{posixpath.dirname(final)}/.sr_keras-tmp-{uuid.uuid4().hex}-{os.path.basename(f)}"
                gfile.copy(f, temp, overwrite=True)
                gfile.rename(temp, final, overwrite=overwrite)
                published.append(final)
            return status, why, published
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def run(paths: list, output_dir: str, options: PipelineOptions, model: Optional[str], load_kwargs: dict,
        scale: int, compare: bool = False, overwrite: bool = False, alpha: Optional[float] = None,
        model_label: str = "model", output_format: OutputFormat = OutputFormat()) -> dict:
    """Runs the job and waits for it; returns {"written", "skipped", "failed": counts, "report": path,
    "failures": {input: why}} (failures read back from the report, at most 1000)."""
    if is_local(output_dir):
        enhance_lib.prepare_output_dir(output_dir.removeprefix("file://"))
    own = {p for p in paths if is_local(p) and enhance_lib.is_own_output(p)}  # As enhance_files: not named.
    names = output_names([p for p in paths if p not in own], output_format.suffix_for(scale))
    handler = EnhanceHandler(model, load_kwargs, output_dir, names, dict(
        compare=compare, overwrite=overwrite, alpha=alpha, model_label=model_label, output_format=output_format,
        progress=False))
    report = posixpath.join(output_dir, REPORT) if not is_local(output_dir) else os.path.join(output_dir, REPORT)
    with beam.Pipeline(options=options) as p:
        (p | "Inputs" >> beam.Create(paths)
           | "Spread" >> beam.Reshuffle()
           | "Enhance" >> RunInference(handler)
           | "Collect" >> beam.combiners.ToList()
           | "Report" >> beam.Map(write_report, report))
    return summary(report)


def write_report(records: list, report: str) -> None:
    """Writes the report (one JSON line per input, sorted) through tf.io.gfile, under a temporary name renamed
    into place: any filesystem TensorFlow reaches, not only Beam's."""
    # Here, not at the top: the report may live on any filesystem TensorFlow reaches.
    import tensorflow as tf

    temp = f"{report}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(temp, "w") as f:
        for record in sorted(records, key=lambda r: r["input"]):
            f.write(json.dumps(record) + "\n")
    tf.io.gfile.rename(temp, report, overwrite=True)


def summary(report: str) -> dict:
    # Here, not at the top: the report may live on any filesystem TensorFlow reaches.
    import tensorflow as tf

    counts, failures = {"written": 0, "skipped": 0, "failed": 0}, {}
    with tf.io.gfile.GFile(report) as f:
        for line in f:
            record = json.loads(line)
            status = "written" if record["status"] == "note" else record["status"]
            counts[status] += 1
            if status == "failed" and len(failures) < 1000:
                failures[record["input"]] = record["why"]
    return {**counts, "report": report, "failures": failures}
