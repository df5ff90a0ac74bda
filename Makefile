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

.PHONY: install run test lint typecheck pytest bench package kernel clean deploy destroy wheelhouse worker-lock

$(STAMP): pyproject.toml setup.py requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

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

test: lint typecheck pytest package

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy tilefan chalicelib app.py stepfunctions/*.py

# The tests run the C atoms kernel: rebuilt whenever its source changes (pip install built
# the first one).
KERNEL_SO := tilefan/domain/_atoms_kernel.so
$(KERNEL_SO): tilefan/domain/atoms_kernel.c
	bash stepfunctions/build_kernel.sh

pytest: $(STAMP) $(KERNEL_SO)
	$(BIN)/pytest

## chalice package + the merge template into dist/, then cfn-lint on the result.
package: $(STAMP)
	bash stepfunctions/package.sh

## Deploy STAGE (default dev) to AWS: package, then `aws cloudformation package/deploy` through
## ARTIFACT_BUCKET (yours), then the spot workers' wheelhouse into the jobs bucket. Optional: REGION,
## ALARM_EMAIL, BUDGET_USD (monthly, 0 = none), DRY_RUN=1 (print the commands, call nothing).
deploy: $(STAMP)
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

## The C atoms kernel (tilefan/domain/_atoms_kernel.so) for this checkout; needs gcc.
kernel:
	bash stepfunctions/build_kernel.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(RUN_VENV) demo .tilefan dist .mypy_cache .pytest_cache .ruff_cache
