# jwst-dms: `make demo` runs the main job on the embedded default; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
# `make test` runs the test modules on TEST_PROCESSES processes (pytest-xdist): each module
# whole on one process, the longest first (tests/conftest.py LONGEST_FIRST).
TEST_PROCESSES ?= 2
PARALLEL = -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

.PHONY: demo test test-fast public-test fault-test scale-test scale-bench bench lint clean install portal-screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dms demo

# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (.ci/run starts them).
test: $(STAMP)
	$(BIN)/python -m pytest $(PARALLEL) --durations=25

# The public pipeline (jwst) re-running our files and compared with ours (docs/compatibility.md:
# tests/test_public_pipeline*.py): about 6 minutes on 2 cores; .ci/run runs them after `make test`.
public-test: $(STAMP)
	DMS_RUN_PUBLIC=1 $(BIN)/python -m pytest -m public tests

# The fault tests (tests/faults, docs/operations.md): the whole system while a worker is
# killed, the object store is down, database connections drop or telemetry comes twice.
# Also the broker restarted empty, a worker hung past its lease, and reprocessing with its
# worker killed. About 15 minutes on 2 cores (14 tests); .ci/run runs them after `make test`.
fault-test: $(STAMP)
	DMS_RUN_FAULTS=1 $(BIN)/python -m pytest -m faults tests/faults

# Unit tests only: no Redis, PostgreSQL, S3 server or workers.
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PARALLEL) -m "not integration"

# Services and workers on network namespaces of their own (tests/scale): needs root and iproute2.
scale-test: $(STAMP)
	$(BIN)/python -m pytest tests/scale

# Exposures per minute with 1, 2 and 4 worker processes per stage, on the same namespaces.
scale-bench: $(STAMP)
	$(BIN)/python -m benchmarks scale

# The portal's browser tests, keeping their screenshots in docs/img (docs/portal.md).
portal-screenshots: $(STAMP)
	DMS_PORTAL_SCREENSHOTS=docs/img $(BIN)/python -m pytest tests/test_portal.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# ruff, then the layer contracts of DESIGN.md §2 ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check shared services tests benchmarks
	$(BIN)/lint-imports --no-cache --no-logo

clean:
	rm -rf var .pytest_cache
