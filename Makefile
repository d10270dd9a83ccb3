# Two entry points, each doing all set-up on a fresh Debian 12 machine (as root):
#   make test  -- apt packages, .venv with Ryu 4.34, then ruff, mypy and the whole test suite
#   make demo  -- the same set-up, then the demo
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test lint typecheck unit demo bench clean

setup:
	bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check mud_ryu tests benchmarks topologies setup.py

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: setup lint typecheck unit

demo: setup
	$(PY) -m mud_ryu.lab.demo

bench: setup
	$(PY) benchmarks/compile.py
	$(PY) benchmarks/discovery.py
	$(PY) benchmarks/enforce_latency.py
	$(PY) benchmarks/dns_update.py
	$(PY) benchmarks/dns_update_core.py
	$(PY) benchmarks/dns_view.py
	$(PY) benchmarks/renewal.py
	$(PY) benchmarks/join_core.py
	$(PY) benchmarks/packet_in.py
	$(PY) benchmarks/mass_join.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
