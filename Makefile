# Routine tasks. `make test` and `make demo` set up .venv on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: setup test lint format docs bench demo toy clean

# torch is pinned first so that the range in pyproject.toml is already satisfied
# and pip does not pull CUDA wheels on CPU-only machines.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e ".[test,docs]"
	touch $@

setup: $(BIN)/.installed

test: setup
	$(BIN)/ruff check qipo_agents tests examples benchmarks
	$(BIN)/python -m pytest -q -n 2 --dist loadfile
	$(BIN)/mkdocs build --strict --quiet --site-dir /tmp/qipo-site

lint: setup
	$(BIN)/ruff check qipo_agents tests examples benchmarks
	$(BIN)/ruff format --check qipo_agents tests examples benchmarks

format: setup
	$(BIN)/ruff check --fix qipo_agents tests examples benchmarks
	$(BIN)/ruff format qipo_agents tests examples benchmarks

docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

toy: setup
	$(BIN)/python examples/eight_gaussians.py

demo: setup
	$(BIN)/qipo-zoo train hopper-medium-mini

# the d3rlpy baselines are installed by benchmarks/setup.sh (--no-deps, torch and gymnasium untouched);
# the local datasets come from scripts/make_local_datasets.py (default folder ~/qipo-datasets)
bench: setup
	VIRTUAL_ENV=$(abspath $(VENV)) bash benchmarks/setup.sh
	MINARI_DATASETS_PATH=$${MINARI_DATASETS_PATH:-$$HOME/qipo-datasets} $(BIN)/python benchmarks/sampling.py
	MINARI_DATASETS_PATH=$${MINARI_DATASETS_PATH:-$$HOME/qipo-datasets} $(BIN)/python benchmarks/throughput.py
	MINARI_DATASETS_PATH=$${MINARI_DATASETS_PATH:-$$HOME/qipo-datasets} $(BIN)/python benchmarks/quality.py

clean:
	rm -rf site .pytest_cache .ruff_cache build dist *.egg-info
