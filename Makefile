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

.PHONY: install demo test test-all lint bench clean

install: $(STAMP)

# torch is pinned and installed first: an open-ended torch requirement pulls the CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install -e ".[dev,llm]"
	touch $(STAMP)

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
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache .mypy_cache
