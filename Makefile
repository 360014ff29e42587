# Two commands do everything on a fresh clone:
#   make repro   set up .venv from requirements.txt, then run the whole pipeline (dvc repro)
#   make test    set up .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test bench plots clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest -q tests

bench: setup
	python -m benchmarks.speed

plots: setup
	dvc plots show

clean-venv:
	rm -rf $(VENV)
