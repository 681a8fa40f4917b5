# The two commands of the README: `make demo` (set up, then run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES ?=

.PHONY: demo test setup debian-packages lint clean

demo: setup
	MINIMIRROR=$(BIN)/minimirror scripts/demo $(PACKAGES)

test: setup
	$(BIN)/pytest
	$(BIN)/pytest --nbval-lax notebooks/

setup: debian-packages $(VENV)/.installed

debian-packages:
	@scripts/install-debian-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lint: setup
	$(BIN)/ruff check minimirror tests benchmarks
	$(BIN)/ruff format --check minimirror tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build .pytest_cache
