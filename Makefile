# resmagic: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint unit notebooks demo bench clean

# torch==2.13.0 first: a CPU build that lies on disk here; installing it before the
# project keeps pip from resolving `torch` to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest

notebooks: $(STAMP)
	$(PY) -m pytest --nbval notebooks/ --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval-sanitize.cfg

test: lint unit notebooks

demo: $(STAMP)
	$(PY) notebooks/demo.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
