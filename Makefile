# Forge developer targets. `make up` and `make test` are the README's two commands.
export PATH := $(HOME)/.local/bin:/usr/local/go/bin:$(PATH)
UV := uv run --frozen

.PHONY: bootstrap up demo down status test lint bench schemas histories

bootstrap:  ## install what is missing (system packages, uv, workspace, Kafka jars, MinIO)
	@bash infra/local/bootstrap.sh

up: bootstrap  ## bring the platform up
	$(UV) forge up

demo: bootstrap  ## bring the platform up and take a real model from raw data to a delivered bundle
	$(UV) forge demo

down:  ## stop everything; no process left behind
	$(UV) forge down

status:  ## health of each server and service, with the log tail of a crashed one
	$(UV) forge status

test: bootstrap  ## the whole test suite against the real stack (started if not running)
	$(UV) pytest

lint:
	$(UV) ruff check .
	$(UV) ruff format --check .
	$(UV) mypy

bench: bootstrap
	$(UV) python bench/stack_startup.py --write
	$(UV) python bench/identity_startup.py --write
	$(UV) python bench/dataset_diff.py --write
	$(UV) --group bench python bench/near_dedup.py --write
	$(UV) python bench/cleaning.py --write
	$(UV) forge stack up
	$(UV) python bench/event_throughput.py --write
	$(UV) python bench/gateway_overhead.py --write
	$(UV) python bench/dataset_ingest.py --write
	$(UV) forge up
	$(UV) python bench/console_load.py --write

schemas:  ## event JSON Schemas, docs/asyncapi.yaml and the docs/events.md catalogue, from libs/contracts
	$(UV) python -m forge_contracts.generate

histories: bootstrap  ## re-record tests/workflow_histories from real runs (after a guarded workflow change)
	FORGE_RECORD_HISTORIES=1 $(UV) pytest tests/chain tests/services/training/test_scheduled_jobs.py \
		tests/services/dataset/test_diffs.py
