# lorasweep developer commands. `make demo` and `make test` each set up first, so either one
# works on a fresh machine.
PYTHON ?= python3
# The CPU build of torch, pinned: an unpinned torch pulls a multi-GB CUDA build. GPU users
# install their own torch first and run `pip install -e .` instead of `make setup`.
TORCH ?= torch==2.13.0
OUT ?= lorasweep-demo

.PHONY: setup setup-dev demo test lint format

setup:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e .

# Test tools and the optional trackers (wandb, mlflow) the tests exercise for real.
setup-dev:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[dev]"

demo: setup
	$(PYTHON) -m lorasweep.cli.main demo --out $(OUT)

test: setup-dev
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m ruff format --check src tests benchmarks

format:
	$(PYTHON) -m ruff format src tests benchmarks
	$(PYTHON) -m ruff check --fix src tests benchmarks
