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
	$(PY) -m sr_keras.demo

bench: install
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# The shipped default model (sr_keras/default_model/), reproducibly: data, flags and evaluation.
# Data: the scikit-image sample photos plus free wallpaper photos from pinned Debian packages (~156 MB download).
DEFAULT_RUN := runs/photo_x4
FREE_PHOTOS := tfrecords/free_photos
default-model: install
	$(PY) -m sr_keras.fetch_photos --out_dir=$(FREE_PHOTOS)
	$(PY) -m sr_keras.build_tfrecords --source=sample,dir:$(FREE_PHOTOS)/images --val_fraction=0 \
	  --out_dir=tfrecords/photos_x4
	$(PY) -m sr_keras.train --model=srgan --preset=photo_x4 --workdir=$(DEFAULT_RUN) \
	  --mixed_precision=mixed_bfloat16 --seed=0
	$(PY) -m sr_keras.make_default_model --workdir=$(DEFAULT_RUN)

clean:
	rm -rf $(VENV) build *.egg-info
