# The two commands a newcomer needs:  make run  (the product on the embedded Dataverse)
#                                     make test (every test)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test lint bench pack

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/crmchat serve

test: lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check connector tests bench
	$(BIN)/ruff format --check --quiet connector tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/dataverse_requests.py

pack: setup
	$(BIN)/crmchat solution pack
