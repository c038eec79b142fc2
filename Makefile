# exoflow-spark developer commands. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STORAGE ?= $(CURDIR)/exoflow-data
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: help venv demo test faults chaos lint typecheck bench clean


help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed  ## create .venv and install the package with its dev tools

demo: venv  ## run the bronze/silver/gold ETL demo on local[*] with storage in ./exoflow-data
	$(PY) jobs/etl_pipeline.py --workflow-id demo --storage $(STORAGE)

test: venv  ## run the whole test suite (real Spark, real Delta)
	$(PY) -m pytest -q tests

faults: venv  ## the full fault matrix: every crash point x checkpoint mode (~7 min)
	$(PY) -m pytest -q tests/test_crash.py -m matrix -p no:cacheprovider

chaos: venv  ## randomized driver kills (seeded, 20+ kills), prints kills per phase and the checks
	$(PY) tests/chaos.py --kills $${KILLS:-20} --seed $${SEED:-7}

lint: venv  ## ruff lint + format check

	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: venv  ## mypy on the package
	$(VENV)/bin/mypy

bench: venv  ## engine overhead vs plain PySpark (prints medians and ratios)
	$(PY) benchmarks/overhead.py

clean:  ## remove the venv, demo storage and caches
	rm -rf $(VENV) exoflow-data .pytest_cache .ruff_cache .mypy_cache spark-warehouse
