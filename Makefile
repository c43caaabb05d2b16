# shopsearch — set-up and everyday commands. Everything installs into .venv.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out
# Models and data never come from a hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

LOCK   := constraints.txt

.PHONY: install demo test test-all lint bench doctor docs llama-cpp lock lock-check clean

install: $(STAMP)

# Every package at the version in the lock ($(LOCK), `make lock`). torch is installed first: an
# open-ended torch requirement pulls the CUDA wheels. llama-cpp-python is compiled for this machine
# without llama.cpp's AMX kernels, which crash in VMs (tools/install_llama.py).
$(STAMP): pyproject.toml $(LOCK) tools/install_llama.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(LOCK) pip
	$(PIP) install -c $(LOCK) torch==2.13.0
	$(PY) tools/install_llama.py --constraints $(LOCK)
	$(PIP) install -c $(LOCK) -e ".[dev,llm]"
	touch $(STAMP)

# The docs site into site/ (mkdocs, strict: a broken link or reference fails the build).
docs: install
	$(PIP) install -q -c $(LOCK) -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Rebuild llama-cpp-python in place (SHOPSEARCH_LLAMA_CMAKE_ARGS=... for flags of your own).
llama-cpp: install
	$(PY) tools/install_llama.py --constraints $(LOCK)

# What this machine offers and whether each native part works (exit 1 names the part that failed).
doctor: install
	$(VENV)/bin/shopsearch doctor

# Resolve the dependencies afresh into $(LOCK) (pip's resolver in a throwaway venv); commit the result.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip packaging
	.lock-venv/bin/python tools/lock.py refresh
	rm -rf .lock-venv

lock-check: install
	$(PY) tools/lock.py check

demo: install
	$(VENV)/bin/shopsearch demo --output $(DEMO_OUT)

# Fast suite (slow end-to-end runs are behind the `slow` marker). pytest exits 5 when it
# collects no test: that is a failure here, not a pass.
test: install
	$(PY) -m pytest -m "not slow" -q

test-all: install
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy src

bench: install
	$(PY) benchmarks/homedepot_baselines.py

clean:
	rm -rf $(VENV) .lock-venv $(DEMO_OUT) .pytest_cache .ruff_cache .mypy_cache
