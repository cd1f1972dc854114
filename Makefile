# Common tasks. `scripts/setup.sh` must have run once (the README's commands do it).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast lint format typecheck bench native clean

setup:
	sh scripts/setup.sh

demo:
	$(VENV)/bin/gridgate demo

test:
	$(PY) -m pytest -q

test-fast:  # unit and component tests only, no end-to-end bench runs
	$(PY) -m pytest -q -m "not hil and not slow"

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck:
	$(VENV)/bin/mypy

native:  # rebuild the C kernels after editing native/
	$(PY) -m pip install -q --no-build-isolation -e '.[test,dev]'

bench:
	$(PY) bench/bench_summarise.py
	$(PY) bench/bench_decode.py
	$(PY) bench/bench_spool.py

clean:
	rm -rf build *.egg-info gateway/_native.* .pytest_cache .mypy_cache .ruff_cache
