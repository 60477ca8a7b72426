# make install | make train | make test | make test-fast | make lint  — each works on a fresh machine
# (installs first when needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A machine with an NVIDIA driver gets pip's default (CUDA) torch; others the CPU build 2.13.0.
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch>=2.13,torch==2.13.0)
EXPERIMENT ?= optionB
# the pretrained world (weights/world, data/world): frozen parts that know something, so options learn
WORLD ?= model=world vlm=world data=world

.PHONY: install train test test-fast lint sample-data world-data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

train: install
	$(PY) train.py experiment=$(EXPERIMENT) $(WORLD)

test: install
	$(PY) -m pytest

# the suite without the end-to-end runs marked slow (training, evaluating, sweeping through the scripts)
test-fast: install
	$(PY) -m pytest -m "not slow"

# ruff's rules and formatting as pyproject.toml sets them (CI runs this before the tests)
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

sample-data: install
	$(PY) -m foresight.data.sample_world --out data/sample --train 64 --val 16 --seed 0

world-data: install
	$(PY) -m foresight.cli world render --out data/world --train 256 --val 32 --heldout 32

clean:
	rm -rf logs .cache .pytest_cache
