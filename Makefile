# omnitrail: `make run` for the demo, `make test` for the whole suite. Both set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test soak bench schemas clean debian-packages

setup: $(STAMP) debian-packages

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "omnitrail needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[local,test]"
	touch $(STAMP)

# Programs the tests run that pip cannot install, from Debian, each only when its command is missing (package and
# command share the name): chromium, which the agent desk's browser tests drive through Playwright (Playwright's
# own browser download is not possible on machines without general internet access, and not needed), and kcat,
# with which a test runs the README's kcat example as written.
DEBIAN_PACKAGES := chromium kcat

debian-packages:
	@missing=; for p in $(DEBIAN_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] || { \
		echo "installing Debian's$$missing for the tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; }

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
