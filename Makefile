# datalake: one command to run, one to test, on a fresh machine.
SHELL := /bin/bash
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/datalake_config.json
RUN_DATE ?= 2026-11-15
# FULL_REFRESH=1: compute every day of the readings' ledger again (docs/scaling.md).
FULL_REFRESH ?=
JOB_ARGS = $(if $(filter 1 true yes,$(FULL_REFRESH)),--full-refresh)
# make generate (docs/evidence.md).
DEVICES ?= 2000
GENERATED ?= data/generated
# make submit / make backfill (docs/scheduling.md).
MASTER ?= local[*]
DEPLOY_MODE ?= client
SUBMIT_ARGS ?=
LOCK_DIR ?= /tmp
LOCK_WAIT ?= 0
SUBMIT = $(PYTHON) -m dependencies.submit --spark-submit $(VENV)/bin/spark-submit --master '$(MASTER)' \
	--deploy-mode $(DEPLOY_MODE) --config '$(CONFIG)' --package packages.zip \
	--lock-dir '$(LOCK_DIR)' --lock-wait $(LOCK_WAIT) --submit-args '$(SUBMIT_ARGS)' --job-args '$(JOB_ARGS)'
PACKAGE_SOURCES = Pipfile.lock build_dependencies.sh dependencies/packaging.py configs/datalake_config.json \
	$(wildcard dependencies/*.py jobs/*.py jobs/alerts/*.py jobs/alerts/*.j2)

.PHONY: install jars test-servers run test lint package submit backfill generate quality bench clean

install: $(STAMP) jars test-servers

# The JVM packages beside Spark's own (dependencies/jars.py: Delta Lake, S3A), fetched once
# with Maven into ~/.m2/repository; Maven itself from Debian/Ubuntu when missing.
jars: $(STAMP)
	@command -v mvn >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven; }
	@$(PYTHON) -m dependencies.jars

$(STAMP): Pipfile Pipfile.lock
	@java -version >/dev/null 2>&1 && [ "$$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -1)" -ge 17 ] \
	  || { echo "make install: Java 17 or newer is required (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v pipenv >/dev/null 2>&1 || python3 -m pip install --quiet pipenv
	pipenv install --dev --deploy
	@touch $(STAMP)

# What the tests start on 127.0.0.1 or run headless: moto comes with the dev packages; the
# Prometheus Pushgateway and Chromium (the alerts report's browser test) from Debian/Ubuntu,
# installed once, when missing.
TEST_PROGRAMS := prometheus-pushgateway chromium

test-servers:
	@missing=$$(for program in $(TEST_PROGRAMS); do command -v $$program >/dev/null 2>&1 || echo $$program; done); \
	[ -z "$$missing" ] || { \
	  command -v apt-get >/dev/null 2>&1 \
	    || { echo "make install: the tests need" $$missing "(Debian/Ubuntu packages) on the PATH"; exit 1; }; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq \
	    && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; }

run: install
	DEBUG=1 PYSPARK_PYTHON=$(PYTHON) $(PYTHON) jobs/datalake_job.py --config $(CONFIG) --run-date $(RUN_DATE) $(JOB_ARGS)

# The code's format and lint rules (pyproject.toml) first: they take seconds, the suite minutes.
test: lint
	PYSPARK_PYTHON=$(CURDIR)/$(PYTHON) $(PYTHON) -m pytest tests --durations=30

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

package: packages.zip

packages.zip: $(STAMP) $(PACKAGE_SOURCES)
	./build_dependencies.sh $@

submit backfill: export PYSPARK_PYTHON ?= $(CURDIR)/$(PYTHON)

submit: packages.zip
	$(SUBMIT) --run-date $(RUN_DATE)

backfill: packages.zip
	@[ -n "$(FROM)" ] && [ -n "$(TO)" ] || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD"; exit 2; }
	$(SUBMIT) --from $(FROM) --to $(TO)

# Evidence (docs/evidence.md): generated data is cached in
# $$DATALAKE_BENCH_DIR (default .bench/); the reports go to docs/.
generate: install
	DEBUG=1 PYSPARK_PYTHON=$(CURDIR)/$(PYTHON) $(PYTHON) jobs/tools/generate_data.py --config $(CONFIG) \
	  --devices $(DEVICES) --run-date $(RUN_DATE) --output $(GENERATED)

quality: install
	PYSPARK_PYTHON=$(CURDIR)/$(PYTHON) $(PYTHON) -m jobs.tools.quality

# FORMAT=csv: the figures of every run also as CSV on stdout (make -s bench FORMAT=csv > f.csv).
bench: install
	@PYSPARK_PYTHON=$(CURDIR)/$(PYTHON) $(PYTHON) -m jobs.tools.bench $(if $(FORMAT),--format $(FORMAT))

clean:
	rm -rf $(VENV) packages.zip output .pytest_cache .ruff_cache spark-warehouse metastore_db derby.log
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
