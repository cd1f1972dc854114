# Common tasks. `scripts/setup.sh` must have run once (the README's commands do it).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast test-boot test-legacy-tflite lint format typecheck bench bench-footprint native clean

setup:
	sh scripts/setup.sh

demo:
	$(VENV)/bin/gridgate demo

test:
	$(PY) -m pytest -q

test-fast:  # unit and component tests only, no end-to-end bench runs
	$(PY) -m pytest -q -m "not hil and not slow"

# As root: the shipped units under a real systemd in a Debian bookworm root booted with
# systemd-nspawn, gridgate installed by install/install.sh (hil_tests/boot/, docs/technician.md).
# Needs debootstrap and systemd-container; the root and the wheels are cached in
# /var/cache/gridgate-boot (GRIDGATE_BOOT_CACHE).
test-boot:
	GRIDGATE_BOOT=1 $(PY) -m pytest -q -p no:cacheprovider hil_tests/boot

# The TFLite adapter's other backend: tflite-runtime 2.14 only works with numpy < 2, so it gets an
# environment of its own; the in-tree C module (abi3) is shared with .venv.
LEGACY ?= .venv-legacy-tflite
test-legacy-tflite:
	test -x $(LEGACY)/bin/python || python3 -m venv $(LEGACY)
	$(LEGACY)/bin/python -m pip install -q "numpy<2" tflite-runtime==2.14.0 cffi paho-mqtt pytest pytest-asyncio
	PYTHONPATH=. GRIDGATE_TFLITE_BACKEND=tflite_runtime $(LEGACY)/bin/python -m pytest -q -p no:cacheprovider \
		tests/test_anomaly_tflite.py tests/test_anomaly_features.py tests/test_anomaly_model.py

lint:
	$(PY) tools/check_architecture.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	clang-format --dry-run --Werror native/*.c native/*.h  # style: .clang-format (cdef/ is generated)

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck:
	$(VENV)/bin/mypy

native:  # rebuild the C kernels (and the package metadata) after editing native/ or setup.cfg
	rm -rf gridgate.egg-info
	$(PY) -m pip install -q --no-build-isolation -e '.[test,dev]'

bench:  # each prints a markdown table and writes JSON to bench/out/; see bench/README.md
	$(PY) bench/bench_summarise.py
	$(PY) bench/bench_decode.py
	$(PY) bench/bench_spool.py
	taskset -c 0 $(PY) bench/bench_loadflow.py
	$(PY) bench/bench_cells.py
	$(PY) bench/bench_cellbus.py
	$(PY) bench/bench_anomaly.py

bench-footprint:  # two minutes each: the daemons under load, RSS and CPU from /proc
	$(PY) bench/footprint.py
	$(PY) bench/bench_plant_daemon.py --speed 10 --duration 60

clean:
	rm -rf build *.egg-info gateway/_native.* .pytest_cache .mypy_cache .ruff_cache
