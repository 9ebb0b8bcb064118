# omnitrail: `make run` for the demo, `make test` for the whole suite. Both set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test soak bench schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "omnitrail needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[local,test]"
	touch $(STAMP)

run: setup
	$(BIN)/omnitrail demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The kill -9 scenario 5 times with random kill points and a broker restart; prints lost/duplicated per projection.
soak: setup
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

# Every benchmark figure beside its target (~10 min on 2 cores; see bench/README.md); all figures end up in
# bench/results/latest.json. Smaller: make bench BENCH_ARGS="--events 50000 --memory-customers 20000"
# REPLAY_BENCH_ARGS="--events 200000". The replay runs even if a bench.run scenario failed; the exit code tells.
bench: setup
	@status=0; \
	$(BIN)/python -m bench.run $(BENCH_ARGS) || status=$$?; \
	$(BIN)/python -m bench.replay $(REPLAY_BENCH_ARGS) || status=$$?; \
	$(BIN)/python -m bench.ingest $(INGEST_BENCH_ARGS) || status=$$?; \
	exit $$status

schemas: setup
	$(BIN)/omnitrail schemas publish

clean:
	rm -rf $(VENV) .omnitrail .pytest_cache
