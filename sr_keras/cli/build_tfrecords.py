"""sr-build-tfrecords: turns photos into sharded LR/HR TFRecords.

  sr-build-tfrecords --source=sample
  sr-build-tfrecords --source=dir:~/data/img_align_celeba --hr_size=128 --val_fraction=0.05
  sr-build-tfrecords --source=tfds:celeb_a --split=train,validation --tfds_data_dir=~/tensorflow_datasets
  sr-build-tfrecords --teacher=realesrgan_x4plus --data=tfrecords/photos_x4_real --out_dir=tfrecords/photos_x4_teacher

Rerunning the same command resumes a killed build.
"""

import sys

from absl import flags

from sr_keras.cli import utils as cli_utils
from sr_keras.cli.utils import fail, quiet_tf_logs
from sr_keras.train import config  # A leaf: no TensorFlow import, --help stays fast.

_SOURCE = flags.DEFINE_string("source", "sample", "sample | dir:PATH | tfds:NAME (e.g. tfds:celeb_a), or several "
                                "joined by commas, whose splits are merged (sample,dir:PATH).")
_SPLIT = flags.DEFINE_list("split", ["train", "validation"], "tfds splits to build (train, validation, test).")
_VAL_FRACTION = flags.DEFINE_float("val_fraction", 0.1, "dir: sources: fraction held out as `val`, "
                                   "chosen by a hash of the relative file path.")
_OUT_DIR = flags.DEFINE_string("out_dir", "", "Output folder. Default: tfrecords/<dataset>_x<scale>.")
_SCALE = flags.DEFINE_integer("scale", 4, "Downscaling factor: 2, 3, 4 or 8.")
_HR_SIZE = flags.DEFINE_integer("hr_size", -1, "N: centre-square crop and resize every HR image to NxN. "
                                "0: keep whole images. -1: the source's default (128 for tfds, else 0).")
_MIN_SIDE = flags.DEFINE_integer("min_side", 96, "With --hr_size=0, skip images whose shorter side is below.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 0, "Training shards (0: one per 2000 images).")
_WORKERS = flags.DEFINE_integer("workers", 0, "Worker processes (0: all cores).")
_DEGRADATION = flags.DEFINE_enum("degradation", "bicubic", list(config.DEGRADATIONS), "How LR is made.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the realistic degradation.")
_MAX_IMAGES = flags.DEFINE_integer("max_images", 0, "Use at most this many images per split (0: all).")
_RESCALES = flags.DEFINE_list("train_rescales", [], "Multi-scale augmentation: the train split also gets pairs "
                              "from each image shrunk by these factors, e.g. 0.75,0.5 (val/test untouched).")
_MAX_PIXELS = flags.DEFINE_integer("max_input_pixels", 0, "Skip (with a reason) inputs with more pixels than this, "
                                   "read from the file header before decoding (0: the default, 100 MP).")
_VERIFY = flags.DEFINE_bool("verify", False, "Do not build: check the dataset at --out_dir against its manifest "
                            "(every shard's size, record count and SHA-256).")
_TEACHER = flags.DEFINE_string("teacher", None, "Build a distillation set instead: degraded LR crops of --data's "
                               "training photos (Real-ESRGAN's second-order model) with this model's output on each "
                               "(a zoo name or a path, e.g. realesrgan_x4plus). One shard per photo: a killed build "
                               "resumes, and photos added later cost only their own shards.")
_DATA = flags.DEFINE_string("data", None, "--teacher: a dataset built by sr-build-tfrecords whose train split holds the "
                            "photos.")
_CROPS = flags.DEFINE_integer("crops_per_image", 16, "--teacher: seeded HR crops per photo.", lower_bound=1)
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None, "tensorflow-datasets data_dir.")
_BEAM = flags.DEFINE_string("beam_pipeline_options", None, "Make the examples and write the shards with an Apache "
                            "Beam pipeline (the beam extra), tfds's convention: runner=DirectRunner,"
                            "direct_num_workers=4 (or a Flink, Spark or Dataflow runner's options). The same "
                            "records, shard count and manifest; --out_dir must be a folder the workers share.")


def _parse_factors(values: list) -> list:
    try:
        return [float(v) for v in values]
    except ValueError:
        fail(f"--train_rescales={','.join(values)}: give numbers between 0 and 1, e.g. 0.75,0.5")


def main(argv):
    del argv
    quiet_tf_logs()
    from sr_keras.data import builder

    if _VERIFY.value:
        return _verify(_OUT_DIR.value)
    if _TEACHER.value:
        return _build_teacher_set()
    cfg = builder.BuildConfig(
        source=_SOURCE.value, out_dir=_OUT_DIR.value, split=tuple(_SPLIT.value),
        val_fraction=_VAL_FRACTION.value, scale=_SCALE.value, hr_size=_HR_SIZE.value,
        min_side=_MIN_SIDE.value, num_shards=_NUM_SHARDS.value, workers=_WORKERS.value,
        degradation=_DEGRADATION.value, seed=_SEED.value, max_images=_MAX_IMAGES.value,
        tfds_data_dir=_TFDS_DATA_DIR.value, train_rescales=tuple(_parse_factors(_RESCALES.value)),
        max_input_pixels=_MAX_PIXELS.value or builder.BuildConfig.max_input_pixels)
    options = cli_utils.beam_pipeline_options(_BEAM.value)[1] if _BEAM.value else None
    try:
        manifest = builder.build_tfrecords(cfg, beam_options=options)
    except builder.BuildError as e:
        fail(str(e))
    print(manifest.summary())
    return 0


def _build_teacher_set() -> int:
    from sr_keras.data import teacher
    from sr_keras.savedmodel import layout

    if not _DATA.value or not _OUT_DIR.value:
        fail("--teacher needs --data=<a dataset folder> and --out_dir=<where the distillation set goes>")
    cfg = teacher.TeacherConfig(data=_DATA.value, out_dir=_OUT_DIR.value, teacher=_TEACHER.value,
                                hr_size=_HR_SIZE.value if _HR_SIZE.value > 0 else teacher.TeacherConfig.hr_size,
                                crops_per_image=_CROPS.value, seed=_SEED.value)
    try:
        import sr_keras

        enhancer = sr_keras.load(cfg.teacher, precision="float32")  # float32: the same targets on every CPU.
        manifest = teacher.build(cfg, *teacher.teacher_of(enhancer))
    except (teacher.TeacherBuildError, layout.SavedModelError, layout.ModelNotFoundError) as e:
        fail(str(e))
    print(manifest.summary())
    return 0


def _verify(out_dir: str) -> int:
    from sr_keras.data import pipeline, schema

    if not out_dir:
        fail("--verify needs --out_dir=<dataset folder>")
    try:
        manifest = schema.read_manifest(out_dir)
        for split in manifest.counts:
            pipeline.shard_files(manifest, split, verify=True)
    except (schema.ManifestError, pipeline.DataError) as e:
        fail(str(e))
    print(f"{out_dir}: {len(manifest.shards)} shards match the manifest (sizes, record counts, SHA-256)")
    return 0


def run():
    cli_utils.run(main)


if __name__ == "__main__":
    sys.exit(run())
