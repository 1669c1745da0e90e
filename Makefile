# One command to run the gateway (SQLite), one to run the whole test suite.
# `make run CONFIG=config/example.toml` also applies a config file (manage.py apply_config) before serving.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 1
CONFIG ?=

.PHONY: run serve test fuzz demo bench install install-test clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_admin
	$(if $(CONFIG),$(BIN)/python manage.py apply_config $(CONFIG))
	@echo "Gateway on http://$(HOST):$(PORT)  (admin: http://$(HOST):$(PORT)/admin/)"
	$(BIN)/python -m gateway_site.serve -b $(HOST) -p $(PORT) --workers $(WORKERS)

# Serve only (already set up): `make serve WORKERS=2` runs two processes on one port (needs REDIS_URL).
serve: install
	$(BIN)/python -m gateway_site.serve -b $(HOST) -p $(PORT) --workers $(WORKERS)

test: install-test
	bash scripts/test.sh

# The fuzzers and fault tests at release size, with a fresh seed (make test runs them bounded, seed fixed).
FUZZ_EXAMPLES ?= 50000
FUZZ_WS_FRAMES ?= 10000
fuzz: install-test
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_WS_FRAMES=$(FUZZ_WS_FRAMES) GATEWAY_VAR_DIR=$$(mktemp -d) \
	  $(BIN)/pytest -m fuzz -s -p no:cacheprovider tests/test_fuzz_http.py tests/test_fuzz_ws.py

demo: install-test
	bash scripts/demo.sh

bench: install-test
	$(BIN)/python -m bench
	$(BIN)/python -m bench.limits

clean:
	rm -rf $(VENV) var .pytest_cache
