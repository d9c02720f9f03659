# The two commands the README promises: `make demo` and `make test`. Both do all set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv

.PHONY: help setup demo test unit integration bench lab-clean clean

help:
	@echo "make demo   - build the lab, run the demo experiment, print the report path"
	@echo "make test   - every test (unit, integration on the lab, sanity, lint)"
	@echo "make bench  - benchmarks (not part of make test)"

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test: setup
	@scripts/test.sh

unit: setup
	@$(VENV)/bin/python -m pytest -q tests/unit

integration: setup
	@scripts/test.sh integration

bench: setup
	@scripts/bench.sh

lab-clean:
	@$(VENV)/bin/python tests/lab/lab.py destroy --all

clean: lab-clean
	rm -rf .collections .pytest_cache build reports
