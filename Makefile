# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# `make run` needs only the package (pip builds its C atoms kernel): a lighter venv of its own, so a
# first `make run` does not install the development toolchain.
RUN_VENV  := .venv-run
RUN_STAMP := $(RUN_VENV)/.installed-stamp
export TILEFAN_HOME ?= $(CURDIR)/.tilefan
# `make package` runs Chalice on the Lambda runtime's Python, in a venv of its own: Chalice
# takes the functions' runtime from the interpreter it runs on, and Chalice 1.34 maps cp313
# and cp312 to the runtime's glibc 2.34, so NumPy's current manylinux_2_28 wheels package.
# The newest of 3.13 and 3.12 found (pyenv's, then on PATH); LAMBDA_PYTHON=... overrides.
ifeq ($(origin LAMBDA_PYTHON),undefined)
LAMBDA_PYTHON := $(firstword $(foreach v,3.13 3.12,$(lastword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python)) \
                   $(shell command -v python$(v) 2>/dev/null)))
endif
PKG_VENV  := .venv-package
PKG_STAMP := $(PKG_VENV)/.installed-stamp
# checkov pins its own boto3 and packaging, which the development venv cannot share.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp

# `make test-newest`: the newest Python here (pyenv's, else python3) with the newest NumPy and
# pydantic that pyproject.toml's ranges allow (no constraints file).
NEWEST_PYTHON ?= $(or $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.1[2-9].*/bin/python3))),python3)
NEWEST_VENV   := .venv-newest
FLOORS_VENV   := .venv-floors
# What test-newest and test-floors run: the unit suite and the embedded backend's functional
# suites. The AWS ones run under moto, whose pins constraints-dev.txt keeps, and the worker
# lock's test compares the lock with the installed (pinned) distributions: both in `make test`.
# So does the REST molecule test, which checks maps against MDAnalysis on MDAnalysisTests'
# files (dev-only packages, about 100 MB).
NEWEST_TESTS  := tests/unit tests/functional/rest_embedded tests/functional/test_scheduler.py \
                 tests/functional/test_scheduler_steps.py tests/functional/test_pipeline_pool.py \
                 tests/functional/test_python_api.py tests/functional/test_cli_job_cap.py \
                 --ignore=tests/unit/test_worker_lock.py \
                 --ignore=tests/functional/rest_embedded/test_molecules.py

.PHONY: install run test lint typecheck pytest bench package checkov kernel clean deploy destroy wheelhouse \
        worker-lock system-deps test-newest test-floors

# The development environment, pinned exactly by constraints-dev.txt (pyproject.toml has ranges).
$(STAMP): pyproject.toml setup.py requirements.txt constraints-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-dev.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(PKG_STAMP): stepfunctions/package-requirements.txt requirements.txt
	@test -n "$(LAMBDA_PYTHON)" || { echo "make package needs Python 3.13 or 3.12 (the Lambda runtime): pyenv install 3.13, or LAMBDA_PYTHON=/path/to/python3.13" >&2; exit 1; }
	rm -rf $(PKG_VENV)
	$(LAMBDA_PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r stepfunctions/package-requirements.txt
	touch $(PKG_STAMP)

$(RUN_STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(RUN_STAMP)

## The three job kinds on the embedded backend, with progress bars and verified results.
run: $(RUN_STAMP)
	@mkdir -p demo
	$(RUN_VENV)/bin/tilefan run matmul --shape-a 3000x2000 --shape-b 2000x1000 --seed 7 --verify --out demo/C.npy
	$(RUN_VENV)/bin/tilefan run add --shape-a 4096x4096 --shape-b 4096x4096 --seed 7 --verify --out demo/S.npy
	$(RUN_VENV)/bin/tilefan run atoms --grid 128 --atoms 1000 --seed 3 --verify --field-out demo/phi.npy

test: system-deps lint typecheck pytest package checkov

## The Debian packages the tests need (chromium, gcc, binutils): installed when root with apt,
## else a one-line message with the command to run.
system-deps:
	@bash .ci/system-deps.sh

## The unit and embedded suites on the newest Python here, with the newest NumPy and pydantic
## the ranges allow, installed as a user would: `pip install .` into a venv that already has
## them must keep them (checked), then the suites run.
$(NEWEST_VENV)/bin/python:
	$(NEWEST_PYTHON) -m venv $(NEWEST_VENV)

# The venv is kept between runs (make clean drops it); what is in it is upgraded every run.
test-newest: $(NEWEST_VENV)/bin/python
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade pip numpy pydantic
	$(NEWEST_VENV)/bin/python -c "import numpy, pydantic; print(numpy.__version__, pydantic.VERSION)" > $(NEWEST_VENV)/before
	$(NEWEST_VENV)/bin/python -m pip install --quiet ".[serve,report,formats]" "aws-lambda-powertools[tracer]" boto3 \
	    pytest hypothesis jsonschema
	$(NEWEST_VENV)/bin/python -c "import numpy, pydantic; print(numpy.__version__, pydantic.VERSION)" > $(NEWEST_VENV)/after
	@cmp -s $(NEWEST_VENV)/before $(NEWEST_VENV)/after || { echo "pip install . changed NumPy or pydantic:" \
	    "$$(cat $(NEWEST_VENV)/before) -> $$(cat $(NEWEST_VENV)/after)" >&2; exit 1; }
	@echo "test-newest: $$($(NEWEST_VENV)/bin/python -V), numpy and pydantic $$(cat $(NEWEST_VENV)/after)"
	$(NEWEST_VENV)/bin/python -m pytest -x -p no:cacheprovider $(NEWEST_TESTS)

## The same suites on the oldest Python tilefan supports with the floor of every range
## (constraints-floors.txt): the lower bounds in pyproject.toml are ones that work.
$(FLOORS_VENV)/bin/python:
	$(PYTHON) -m venv $(FLOORS_VENV)

# No pip upgrade here: chalice's floor (1.31) requires pip < 23.4.
test-floors: $(FLOORS_VENV)/bin/python
	$(FLOORS_VENV)/bin/python -m pip install --quiet -c constraints-floors.txt ".[serve,report,formats]" \
	    "aws-lambda-powertools[tracer]" boto3 pytest hypothesis jsonschema
	@echo "test-floors: $$($(FLOORS_VENV)/bin/python -V), $$($(FLOORS_VENV)/bin/python -c \
	    'import numpy, pydantic, tqdm; print("numpy", numpy.__version__, "pydantic", pydantic.VERSION, "tqdm", tqdm.__version__)')"
	$(FLOORS_VENV)/bin/python -m pytest -x -p no:cacheprovider $(NEWEST_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy tilefan chalicelib app.py stepfunctions/*.py

# The tests run the C atoms kernel: rebuilt whenever its source changes (pip install built
# the first one).
KERNEL_SO := tilefan/compute/_atoms_kernel.so
$(KERNEL_SO): tilefan/compute/atoms_kernel.c
	bash stepfunctions/build_kernel.sh

pytest: $(STAMP) $(KERNEL_SO)
	$(BIN)/pytest

## chalice package + the merge template into dist/ (on the Lambda runtime's Python), then cfn-lint on the result.
package: $(STAMP) $(PKG_STAMP)
	PACKAGE_PYTHON=$(PKG_VENV)/bin/python bash stepfunctions/package.sh

$(CHECKOV_STAMP): stepfunctions/checkov-requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r stepfunctions/checkov-requirements.txt
	touch $(CHECKOV_STAMP)

## checkov on the packaged template: every finding is fixed, or waived in the template's
## Metadata with its reason (tests/unit/test_checkov_waivers.py). Offline: --skip-download.
checkov: package $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --file dist/sam.json --framework cloudformation --compact --quiet --skip-download

## Deploy STAGE (default dev) to AWS through boto3 (no AWS CLI): check for credentials and a region,
## package, upload through ARTIFACT_BUCKET (yours), a CloudFormation change set, then the spot workers'
## wheelhouse into the jobs bucket. Optional: REGION, ALARM_EMAIL, BUDGET_USD (monthly, 0 = none),
## DRY_RUN=1 (print the commands and calls, call nothing; needs no account).
deploy: $(STAMP) $(PKG_STAMP)
	$(BIN)/python stepfunctions/deploy.py deploy --stage "$(or $(STAGE),dev)" --artifact-bucket "$(ARTIFACT_BUCKET)" \
	    $(if $(REGION),--region "$(REGION)") $(if $(ALARM_EMAIL),--alarm-email "$(ALARM_EMAIL)") \
	    $(if $(BUDGET_USD),--budget-usd "$(BUDGET_USD)") $(if $(filter 1,$(DRY_RUN)),--dry-run)

## Terminate STAGE's spot workers and delete its stack. The jobs bucket and table are retained;
## EMPTY_BUCKET=1 deletes every object version in the bucket, then the bucket. REGION, DRY_RUN=1 as above.
destroy: $(STAMP)
	$(BIN)/python stepfunctions/deploy.py destroy --stage "$(or $(STAGE),dev)" $(if $(REGION),--region "$(REGION)") \
	    $(if $(filter 1,$(EMPTY_BUCKET)),--empty-bucket) $(if $(filter 1,$(DRY_RUN)),--dry-run)

## The spot workers' wheelhouse in dist/worker/: tilefan and every locked dependency, for an
## install with no package index (downloads from PyPI; part of deploying, not of `make test`).
wheelhouse: package
	bash stepfunctions/wheelhouse.sh

## Re-resolve stepfunctions/worker-requirements.txt into stepfunctions/worker-lock.txt (hashes).
worker-lock: $(STAMP)
	bash stepfunctions/wheelhouse.sh lock

## The C atoms kernel (tilefan/compute/_atoms_kernel.so) for this checkout; needs gcc.
kernel:
	bash stepfunctions/build_kernel.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(RUN_VENV) $(PKG_VENV) $(CHECKOV_VENV) $(NEWEST_VENV) $(FLOORS_VENV) demo .tilefan dist .mypy_cache .pytest_cache .ruff_cache
