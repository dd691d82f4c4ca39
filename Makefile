# Two commands for a fresh clone: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install demo test test-fast test-slow lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch is pinned to the CPU wheel (see README for CUDA); the rest comes from PyPI.
	$(BIN)/pip install -q -e '.[train,flows,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pix2pix samples data/samples
	$(BIN)/pix2pix build data/samples data/demo --op inpaint --overwrite --no-progress
	$(BIN)/pix2pix inspect data/demo

# Everything, including the slow tier (real servers, real training); CI runs this.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow" --durations=15

# The fast default set (what `pytest` alone runs).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/bench_build.py
	$(BIN)/python bench/bench_combine.py

clean:
	rm -rf $(VENV) data/demo data/samples .pytest_cache
