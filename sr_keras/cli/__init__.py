"""The command-line programs: thin absl binaries that parse flags and call one library function each.

  sr-fetch-photos     fetch_photos        data.photos.fetch_photos
  sr-build-tfrecords  build_tfrecords     data.builder.build_tfrecords
  sr-train            train               train_lib.train_and_evaluate
  sr-export           export              writer.export
  sr-enhance          enhance             enhance_lib.enhance_files
  sr-evaluate         evaluate            evaluate_lib.evaluate
  sr-serve            serve               serving.runner.serve
  sr-client           client              serving.client.enhance_bytes
  (make demo)         demo                train/export/evaluate/enhance on the sample photos
  (make default-model) make_default_model  model_card.make_default_model
"""
