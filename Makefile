# Two commands do everything on a fresh clone:
#   make repro   set up .venv from requirements.txt, then run the whole pipeline (dvc repro)
#   make test    set up .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test test-fast bench sweep exps share facts plots clean-venv

setup: $(VENV)/.installed

# tools/venv-path.pth puts .venv/bin first on PATH for every Python of the
# environment, so `.venv/bin/dvc repro` finds the stages' `python` without activation.
$(VENV)/.installed: requirements.txt tools/venv-path.pth
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	cp tools/venv-path.pth "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ae-compare-venv-path.pth"
	touch $@

repro: setup
	dvc repro

# Two workers, a test file each at a time: the end-to-end module (one shared scratch
# repository, the longest) is collected first (tests/conftest.py) and kept first
# (--no-loadscope-reorder), so it runs beside the rest instead of after it.
# `make test-fast` leaves out the modules that run dvc repro or a sweep, and the statistics'
# simulations, for iterating.
test: setup
	python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests

test-fast: setup
	python -m pytest -q -n 2 tests --ignore tests/test_pipeline.py --ignore tests/test_sweep.py \
		--ignore tests/test_extending.py --ignore tests/test_cluster.py -k "not simulated"

bench: setup
	python -m benchmarks.speed

# One DVC experiment per cell of sweep.seeds x sweep.latent_dims, sweep.jobs at a time; report in plots/sweep/.
sweep: setup
	python -m tools.sweep

# `dvc exp show` narrowed to a 200-column table: changed params, then each architecture's results.
exps: setup
	python -m tools.exps

# Push to the default DVC remote the workspace's outputs, the run-cache and the runs'
# outputs (dvc push --run-cache alone sends no outputs since DVC 3).
share: setup
	python -m tools.share

# Times, memory, sizes and devices of the last run (metrics/run/, not DVC metrics).
facts: setup
	python -m tools.facts

plots: setup
	dvc plots show

clean-venv:
	rm -rf $(VENV)
