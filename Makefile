# Two commands matter: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test bench admin-key clean

# The stamp depends on pyproject.toml, so a changed dependency list reinstalls.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,otel]'
	@touch $@

$(BIN)/.installed-bench: $(BIN)/.installed
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	@touch $@

run: $(BIN)/.installed
	@echo "jwks-service on http://$(HOST):$(PORT)  (JWKS: http://$(HOST):$(PORT)/.well-known/jwks.json)"
	@echo "Admin key: in another terminal run  make admin-key  (or $(BIN)/jwks-service admin-key create)"
	@JWKS_ISSUER=$${JWKS_ISSUER:-http://$(HOST):$(PORT)} JWKS_LOG_FORMAT=$${JWKS_LOG_FORMAT:-text} \
	  JWKS_SHUTDOWN_DELAY=$${JWKS_SHUTDOWN_DELAY:-0} \
	  $(BIN)/jwks-service serve --host $(HOST) --port $(PORT)

admin-key: $(BIN)/.installed
	@$(BIN)/jwks-service admin-key create $(if $(REALM),--realm $(REALM))

# Real npm OAuth clients for the interoperability tests, when node is on the machine.
NODE_CLIENTS := tests/oauth/node/node_modules/.installed
$(NODE_CLIENTS): tests/oauth/node/package.json
	@if command -v npm >/dev/null; then \
	  npm install --prefix tests/oauth/node --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the openid-client interoperability test will not run"; fi

# The README's walkthrough (tests/test_readme.py) and the key-format tests run the real
# ssh-keygen and openssl: installed here when missing and we are root with apt-get.
test: $(BIN)/.installed-test $(NODE_CLIENTS)
	@{ command -v openssl && command -v ssh-keygen; } >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get update -qq && apt-get install -y -qq openssl openssh-client; } >/dev/null 2>&1; } || \
	  echo "openssl/ssh-keygen missing and not installable: the README walkthrough test will fail"
	$(BIN)/ruff check service tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Not part of make test: throughput and latency as ratios to limits measured in the
# same run, written to bench/RESULTS.md (under 10 minutes on 2 cores). It needs wrk
# (Debian's package; installed here when we are root with apt-get), else it falls
# back to a slower Python load generator and says so. BENCH_ARGS: e.g. --only core,
# --seconds 4, --profile token (py-spy), --no-write.
bench: $(BIN)/.installed-bench
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } \
	  >/dev/null 2>&1; } || echo "wrk could not be installed: the Python load generator runs instead"
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .jwks-data .pytest_cache .mypy_cache .ruff_cache
