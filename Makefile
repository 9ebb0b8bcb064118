# omnitrail: `make run` for the demo, `make test` for the whole suite. Both set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "omnitrail needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

run: setup
	$(BIN)/omnitrail demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.replay $(REPLAY_BENCH_ARGS)

schemas: setup
	$(BIN)/omnitrail schemas publish

clean:
	rm -rf $(VENV) .omnitrail .pytest_cache
