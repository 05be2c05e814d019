# Fresh-machine set-up: `make demo` and `make test` (each runs `make install` first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo bench default-model clean

install: $(STAMP)

# Re-installs only when the package metadata changes; the package itself is editable.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(PY) -m pytest tests

test-fast: install
	$(PY) -m pytest tests -m "not slow"

demo: install
	$(PY) -m sr_keras.cli.demo

bench: install
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# The shipped default model (sr_keras/default_model/), reproducibly: data, flags and evaluation.
# Data: the scikit-image sample photos plus free wallpaper photos from pinned Debian packages (~156 MB download).
FREE_PHOTOS := tfrecords/free_photos
# Stage 1 (photo_x4, ~95 min on 2 CPU cores), then stage 2 (photo_x4_ms: fine-tuned from stage 1 on the same
# photos at 1, 0.75 and 0.5x size, ~30 min), then export, evaluate on three held-out sets and write the card.
default-model: install
	$(PY) -m sr_keras.cli.fetch_photos --out_dir=$(FREE_PHOTOS)
	$(PY) -m sr_keras.cli.build_tfrecords --source=sample,dir:$(FREE_PHOTOS)/images --val_fraction=0 \
	  --out_dir=tfrecords/photos_x4
	$(PY) -m sr_keras.cli.build_tfrecords --source=sample,dir:$(FREE_PHOTOS)/images --val_fraction=0 \
	  --train_rescales=0.75,0.5 --out_dir=tfrecords/photos_x4_ms
	$(PY) -m sr_keras.cli.train --model=srgan --preset=photo_x4 --workdir=runs/photo_x4 \
	  --mixed_precision=mixed_bfloat16 --seed=0
	$(PY) -m sr_keras.cli.train --model=srgan --preset=photo_x4_ms --workdir=runs/photo_x4_ms \
	  --mixed_precision=mixed_bfloat16 --seed=1
	$(PY) -m sr_keras.cli.make_default_model --workdir=runs/photo_x4_ms

clean:
	rm -rf $(VENV) build *.egg-info
