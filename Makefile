# Fresh-machine set-up: `make demo` and `make test` (each runs `make install` first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo bench default-model real-model real-model-distill real-bench zoo-figures clean

install: $(STAMP)

# Re-installs only when the package metadata changes; the package itself is editable.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(PY) -m pytest tests -n 2 --dist worksteal --durations=25

test-fast: install
	$(PY) -m pytest tests -n 2 --dist worksteal -m "not slow"

demo: install
	$(PY) -m sr_keras.cli.demo

bench: install
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# sr_keras/zoo/figures.json: each zoo model's figures on the sample photos, as its conversion measures them (what
# sr-models prints before any conversion); run after a change to the zoo, the sample photos or the protocol.
zoo-figures: install
	$(PY) benchmarks/zoo_figures.py

# The shipped default model (sr_keras/default_model/), reproducibly: its recipe (sr_keras/release/model_card.py, RECIPE)
# fetches free photos from pinned Debian packages (~156 MB), builds the TFRecords, trains stage 1 (photo_x4, ~95 min
# on 2 CPU cores) and stage 2 (photo_x4_ms, ~30 min), then exports, evaluates on three held-out sets and writes the card.
default-model: install
	$(PY) -m sr_keras.cli.make_default_model --reproduce

# sr_keras_real_x4 (sr_keras/real_model/), reproducibly: the same photos, the real_x4 preset (SPAN from span_x4, L1
# then GAN under Real-ESRGAN's second-order degradations, ~50 minutes of training on 2 CPU cores), then the
# real-world set and card.
real-model: install
	$(PY) -m sr_keras.cli.make_real_model --reproduce

# The distilled candidate for sr_keras_real_x4: a distillation set (degraded crops with realesrgan_x4plus's output,
# resumable), the compact generator from realesr_general_x4v3 (L1 to the teacher, then perceptual + adversarial;
# about 1 hour on 2 CPU cores), the real-world set, then export and card (into the package: check its figures).
real-model-distill: install
	$(PY) -m sr_keras.cli.make_real_model --reproduce --distill

# The README's perception-distortion table: the seeded real-world set, and every model on it.
real-bench: install
	$(PY) benchmarks/bench_real.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
