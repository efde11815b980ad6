# Two commands matter: `make demo` and `make test`. Both build .venv when it is
# missing or older than pyproject.toml / constraints.txt / this Makefile.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.built
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
# Packages whose metadata asks for what they do not need (mediapipe: numpy<2, jax, sounddevice...);
# their real run-time deps are in pyproject.toml.
NODEPS := mediapipe==0.10.21

# Small models on 2 shared cores: one thread each, or OpenMP thrashes.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint bench freeze clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps $(NODEPS)
	@touch $(STAMP)

demo: $(STAMP)
	@mkdir -p out
	$(BIN)/banana run examples/vignette.json --input sample:astronaut -o out/demo.png

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench.executor

freeze: $(STAMP)
	@{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.new && mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
