# One-command entry points. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install demo test lint typecheck pytest bench examples clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
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
	$(BIN)/mypy model indexer app

pytest: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)  ## speed benchmarks (print numbers beside their baselines)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/encode.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/index.py

examples: $(STAMP)  ## regenerate the sample media under examples/media
	$(BIN)/python examples/make_examples.py

clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache artifacts
