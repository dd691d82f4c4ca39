# Two commands for a fresh clone: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install demo test test-fast test-slow lint bench bench-train bench-translate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch is pinned to the CPU wheel (see README for CUDA); the rest comes from PyPI.
	$(BIN)/pip install -q -e '.[train,flows,export,dev]'
	touch $(STAMP)

install: $(STAMP)

# The pipeline of dvc.yaml on the built-in photos: samples -> build -> train (small) -> evaluate.
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" DVC_NO_ANALYTICS=1 $(BIN)/dvc repro
	$(BIN)/pix2pix inspect data/dataset
	@echo
	@echo "demo photos:   data/samples/"
	@echo "dataset:       data/dataset/  (look at data/dataset/preview.jpg)"
	@echo "trained model: runs/demo/generator.pt, sample grids in runs/demo/samples/"
	@echo "metrics:       runs/demo/metrics.json (dvc metrics show; curves: dvc plots show)"
	@echo "report:        reports/demo/report.html (8 test images: the model vs doing nothing and Telea, inside the box too)"
	@echo "to keep/share: git add dvc.lock .dvc/config runs/demo reports/demo; dvc push (README, DVC)"

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

bench-translate: $(STAMP)
	$(BIN)/python bench/bench_translate.py

bench-train: $(STAMP)
	$(BIN)/python bench/bench_train_step.py
	$(BIN)/python bench/bench_dataloader.py

clean:
	rm -rf $(VENV) data/dataset data/samples runs reports .pytest_cache
