# contrl: `make demo` and `make test` work on a fresh machine (they create .venv).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench bench-offline install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Train SAC on Pendulum-v1 (about 1-2 minutes on 2 cores), evaluate it, say where it is.
demo: $(STAMP)
	$(BIN)/contrl train sac Pendulum-v1 --steps 15000 --runs-dir runs/demo
	@run=$$(ls -td runs/demo/sac-Pendulum-v1-* | head -1); \
	$(BIN)/contrl eval $$run --episodes 10 && \
	echo "results: $$run (progress.csv, eval.json, checkpoints/, tb/)"

# two workers (pytest-xdist): the suite is mostly single-threaded compilation and env stepping
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow" tests

# Peers for the benchmarks: PyTorch CPU 2.13.0, Stable-Baselines3, sbx.
bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/throughput.py

# d3rlpy for the offline comparison (installed without its gymnasium pin, see the file).
bench-offline: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/pip install -q --no-deps -r benchmarks/requirements-d3rlpy.txt

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
