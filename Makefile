# Set-up and the two everyday commands. `make demo` and `make test` each create the
# virtual environment on first use (fresh machines need nothing else).
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel that lies on these machines; elsewhere pass your own, e.g. TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench-quick docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/sktve demo

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check sktve tests benchmarks
	$(BIN)/ruff format --check sktve tests benchmarks

# The documentation site (docs/_build/html): installs the "docs" extra, then builds with
# warnings as errors; the gallery examples run on the synthetic database.
docs: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[docs]"
	HF_HUB_OFFLINE=1 $(MAKE) -C docs html PYTHON=$(abspath $(BIN))/python
