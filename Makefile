# exoflow-spark developer commands. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STORAGE ?= $(CURDIR)/exoflow-data
# pytest-xdist workers for `make test` (each has its own SparkSession); 0 runs in one process
WORKERS ?= 2
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: help venv deps demo test test-unit test-spark test-integration faults chaos soak lint typecheck bench bench-full clean


help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed  ## create .venv and install the package with its dev tools

$(VENV)/.jars: $(VENV)/.installed tools/fetch_jars.py
	$(PY) tools/fetch_jars.py
	touch $@

deps: $(VENV)/.jars  ## venv + the Delta and hadoop-aws jars from Maven Central into the Ivy cache

demo: venv  ## run the bronze/silver/gold ETL demo on local[*] with storage in ./exoflow-data
	$(PY) jobs/etl_pipeline.py --workflow-id demo --storage $(STORAGE)

test: deps  ## the whole suite, one pytest run: unit + Spark + integration (what CI runs)
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=30 tests

test-unit: venv  ## tests/unit only: no Spark, seconds
	$(PY) -m pytest -q tests/unit

test-spark: deps  ## tests/spark only: the shared SparkSession, real Delta, SIGKILLed drivers
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder tests/spark

test-integration: deps  ## tests/integration only: standalone cluster, Spark Connect, S3, notebooks
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder tests/integration

faults: deps  ## the full fault matrix: crash point x checkpoint mode x format, the sample points (~16 min, not in CI)
	$(PY) -m pytest -q tests/spark/test_crash.py -m matrix -p no:cacheprovider

chaos: deps  ## seeded random driver kills over every shape + combined faults (KILLS=200 SEED=7 [RECORD=f.jsonl]; not in CI)
	$(PY) tools/chaos.py --kills $${KILLS:-20} --seed $${SEED:-7} $${RECORD:+--record $$RECORD}

soak: deps  ## hundreds of runs in one driver (leak checks) + random driver kills (not in CI)
	$(PY) tools/soak.py --runs $${RUNS:-300} --kills $${KILLS:-40} --seed $${SEED:-11}

lint: venv  ## ruff lint + format check

	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: venv  ## mypy on the package
	$(VENV)/bin/mypy

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench-installed  ## short benchmarks vs plain PySpark, Spark and Dagster (< 10 min)
	$(PY) benchmarks/overhead.py --rows 3000000 --reps 6 --warmup 2 --modes false
	$(PY) benchmarks/peers.py --short
	$(PY) benchmarks/sharing.py --short
	$(PY) benchmarks/controller.py --short
	$(PY) benchmarks/scaling.py --short
	$(PY) benchmarks/checkpoint_cost.py --reps 3
	$(PY) benchmarks/report.py

bench-full: $(VENV)/.bench-installed  ## the full benchmarks behind docs/benchmarks.md (~1 h)
	$(PY) benchmarks/overhead.py --rows 10000000 --reps 9
	$(PY) benchmarks/peers.py
	$(PY) benchmarks/sharing.py
	$(PY) benchmarks/controller.py
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/log_medium.py --records 200
	$(PY) benchmarks/checkpoint_cost.py
	$(PY) benchmarks/stage_split.py
	$(PY) benchmarks/report.py

clean:  ## remove the venv, demo storage and caches
	rm -rf $(VENV) exoflow-data .pytest_cache .ruff_cache .mypy_cache spark-warehouse
