# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHUYU := $(VENV)/bin/shuyu
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench check fix services clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system.sh
	scripts/install-system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

services: setup
	scripts/start-postgres.sh >/dev/null
	scripts/start-dockerd.sh

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/demo.sh

test: services
	SHUYU_TEST_PG_URL="$$(scripts/start-postgres.sh)" $(PY) -m pytest $(PYTEST_ARGS)

bench: services
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shuyu catalog policies lineage jobs egress_review privacy aggregation sandbox api

fix: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .shuyu .pytest_cache
