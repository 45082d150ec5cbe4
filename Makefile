# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.devicefit-installed
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow lint typecheck venv clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel; nothing afterwards may pull a newer one.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: venv
	$(VENV)/bin/devicefit check -o demo-out --force

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy src

test: lint typecheck
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

test-slow: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m slow

bench: venv
	$(PY) benchmarks/interp_speed.py

clean:
	rm -rf $(VENV) build demo-out .mypy_cache .ruff_cache
