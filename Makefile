# omnitrail: `make run` for the demo, `make test` for the whole suite. Both set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test soak bench schemas clean browser

setup: $(STAMP) browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "omnitrail needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[local,test]"
	touch $(STAMP)

# The browser tests of the agent desk drive Debian's chromium through Playwright (Playwright's own browser download
# is not possible on machines without general internet access, and not needed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

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
	$(BIN)/python -m bench.reads $(READS_BENCH_ARGS) || status=$$?; \
	exit $$status

schemas: setup
	$(BIN)/omnitrail schemas publish

clean:
	rm -rf $(VENV) .omnitrail .pytest_cache
