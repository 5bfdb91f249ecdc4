# One-command entry points. `make demo` and `make test` set everything up on a fresh machine.

# The Python that creates .venv: PYTHON if given (`make test PYTHON=/path/to/python`), else the
# newest of PYTHONS that actually runs as 3.11-3.13. `command -v` is not enough: pyenv shims such
# as python3.13 sit on PATH but fail unless that version is selected, so each one is run. Only the
# .venv recipe expands PYTHON, so nothing is probed while .venv exists (whichever Python made it).
PYTHONS := python3.13 python3.12 python3.11 python3
PY_OK := import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))
PYTHON ?= $(shell for p in $(PYTHONS); do $$p -c '$(PY_OK)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install demo test lint typecheck pytest bench examples clean

$(STAMP): pyproject.toml
	@if test -x $(BIN)/python; then echo "keeping $(VENV) ($$($(BIN)/python -V))"; else \
	  py='$(PYTHON)'; \
	  test -n "$$py" || { echo "no Python 3.11-3.13 runs here (tried $(PYTHONS)); pass PYTHON=/path/to/python"; exit 1; }; \
	  $$py -c '$(PY_OK)' 2>/dev/null || { echo "PYTHON=$$py does not run as Python 3.11-3.13"; exit 1; }; \
	  echo "using $$py ($$($$py -V))"; \
	  $$py -m venv $(VENV) || exit 1; \
	fi
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/pip install -q -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import model, indexer, app, torch, transformers, qdrant_edge, gradio"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## index examples/ into the embedded store and serve the search UI
	$(BIN)/ume demo

test: lint typecheck pytest  ## everything CI checks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy model indexer app benchmarks

pytest: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)  ## speed benchmarks (print numbers beside their baselines)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/encode.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/index.py

examples: $(STAMP)  ## regenerate the sample media under examples/media
	$(BIN)/python examples/make_examples.py

clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache artifacts
