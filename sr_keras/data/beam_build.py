"""The examples and shards of a TFRecord build made by an Apache Beam pipeline (`sr-build-tfrecords
--beam_pipeline_options=...`), for sources too big for one machine's threads.

    per split:  (position, item x rescale factor) -> Reshuffle -> builder.process_item (the local build's own)
                  ok   -> rank among the examples made (from their positions) -> shard = rank mod shards ->
                          GroupByKey -> one TFRecord file per shard in rank order, and a sidecar with its entry
                  skip -> one list of (path, reason) per split, in build order

`builder` plans the work and does everything around it as for a local build: the staging folder, carrying over untouched splits,
the manifest, and the one atomic swap at the end, so a failed or killed job leaves the previous dataset as it was.
The shards are the local build's, byte for byte: the same function makes each record (serialized
deterministically), the same rule counts the shards, and each record lands in the shard and place that the local
build's round-robin gives it, whatever order the workers finish in. The output folder must be one that the workers and the launching process share (a local or mounted
folder), because the swap is a POSIX rename.
"""

from __future__ import annotations

import json
import os

import apache_beam as beam  # noqa: E402, I001

from sr_keras.data import schema  # noqa: I001
from sr_keras.data import sources as sources_lib
from sr_keras.utils import beam_options  # noqa: F401, I001 - first: quiets Beam's import-time warnings.


def _sidecar(staging: str, split: str, index: int) -> str:
    return os.path.join(staging, f".beam-{split}-{index:05d}.json")


def _skipped_file(staging: str, split: str) -> str:
    return os.path.join(staging, f".beam-{split}-skipped.json")


def _write_json(value, path: str) -> None:
    with open(path + ".part", "w") as f:
        json.dump(value, f)
    os.replace(path + ".part", path)


def write_shard(index: int, records, staging: str, split: str, count: int) -> None:
    """Writes shard `index` of `split` (records: (rank, (serialized, hr_side))) in rank order, and its sidecar."""
    # Here, not at the top: TensorFlow loads on the worker that writes.
    import tensorflow as tf

    records = sorted(records, key=lambda r: r[0])
    name = schema.SHARD_PATTERN.format(split=split, index=index, count=count)
    path = os.path.join(staging, name)
    with tf.io.TFRecordWriter(path) as w:
        for _, (serialized, _) in records:
            w.write(serialized)
    sides = [side for _, (_, side) in records]
    _write_json({"file": name, "split": split, "records": len(records), "bytes": os.path.getsize(path),
                 "sha256": sources_lib.sha256_file(path), "sides": [min(sides), max(sides)]},
                _sidecar(staging, split, index))


def build_splits(staging: str, plans: dict, make, manifest: dict, options, verbose: bool = True) -> None:
    """Fills `manifest` (counts, shards, skipped, hr_min_side) as `builder._build_splits` does, with the work
    done by a Beam pipeline run with `options`. `plans`: {split: (shard count, [(item, factor)] in build order)};
    `make(item, factor)` -> `builder.process_item`'s result."""
    plans = {split: (count, list(enumerate(work))) for split, (count, work) in plans.items()}
    if verbose:
        print(f"building {', '.join(f'{s} ({len(w)} items)' for s, (_, w) in plans.items())} on Apache Beam",
              flush=True)
    with beam.Pipeline(options=options) as p:
        for split, (count, work) in plans.items():
            made = (p | f"{split}/Items" >> beam.Create(work)
                      | f"{split}/Spread" >> beam.Reshuffle()
                      | f"{split}/Make" >> beam.Map(lambda w: (w[0], make(*w[1]))))
            ok, skip = made | f"{split}/Split" >> beam.Partition(lambda r, _: 0 if r[1][0] == "ok" else 1, 2)
            # The local build deals the examples that were made, in build order, round-robin over the shards:
            # the rank of each among them (from their positions alone, a small list) places it the same way.
            ranks = (ok | f"{split}/Positions" >> beam.Map(lambda r: r[0])
                        | f"{split}/AllPositions" >> beam.combiners.ToList()
                        | f"{split}/Rank" >> beam.Map(lambda ps: {pos: i for i, pos in enumerate(sorted(ps))}))
            (ok | f"{split}/Place" >> beam.Map(lambda r, rank, n=count: (rank[r[0]] % n, (rank[r[0]], r[1][2])),
                                               rank=beam.pvalue.AsSingleton(ranks))
                | f"{split}/Group" >> beam.GroupByKey()
                | f"{split}/Write" >> beam.Map(lambda kv, s=split, n=count: write_shard(kv[0], kv[1], staging, s, n)))
            (skip | f"{split}/Why" >> beam.Map(lambda r, s=split: (r[0], {"path": r[1][1], "reason": r[1][2],
                                                                          "split": s}))
                  | f"{split}/Collect" >> beam.combiners.ToList()
                  | f"{split}/Skipped" >> beam.Map(lambda v, path=_skipped_file(staging, split):
                                                   _write_json([why for _, why in sorted(v, key=lambda x: x[0])],
                                                               path)))
    for split, (count, _) in plans.items():
        entries = []
        for index in range(count):
            sidecar = _sidecar(staging, split, index)
            if os.path.exists(sidecar):
                with open(sidecar) as f:
                    entries.append(json.load(f))
                os.remove(sidecar)
            else:  # No key fell in this shard: an empty file, so the split keeps its shard count.
                name = schema.SHARD_PATTERN.format(split=split, index=index, count=count)
                open(os.path.join(staging, name), "wb").close()
                entries.append({"file": name, "split": split, "records": 0, "bytes": 0,
                                "sha256": sources_lib.sha256_file(os.path.join(staging, name)), "sides": None})
        with open(_skipped_file(staging, split)) as f:
            manifest["skipped"].extend(json.load(f))
        os.remove(_skipped_file(staging, split))
        sides = [e["sides"] for e in entries if e["sides"]]
        manifest["counts"][split] = sum(e["records"] for e in entries)
        if sides:
            manifest["hr_min_side"][split] = {"min": min(s[0] for s in sides), "max": max(s[1] for s in sides)}
        manifest["shards"].extend({k: v for k, v in e.items() if k != "sides"} for e in entries)
