# Two commands on a fresh machine: `make serve` and `make test`.
#   serve: a venv with what serving needs (the project and CPU ONNX Runtime; no torch, no
#          Debian packages, no root)
#   test:  the full setup (CPU torch, train and dev extras, Debian packages) and every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 3000
APT_PACKAGES := dataset-fashion-mnist prometheus chromium
TORCH := torch==2.13.0
# Where the CPU build of torch comes from; empty: pip's configured index. On PyPI, Linux
# wheels are CUDA builds (GBs): make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
FAST := not serve and not train and not deploy and not slow

export BENTOML_DO_NOT_TRACK := true
export BENTOML_HOME ?= $(CURDIR)/.bentoml-home

.PHONY: setup setup-serve system-deps serve test test-fast lint typecheck format bench bench-gpu clean

setup-serve: $(VENV)/.serve-installed
setup: $(VENV)/.dev-installed

$(VENV)/.serve-installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cpu]'
	touch $@

$(VENV)/.dev-installed: $(VENV)/.serve-installed
	$(PY) -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[cpu,train,dev]'
	touch $@

# Training data and Prometheus, for training and the tests; serving needs neither.
system-deps:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	else \
		echo "missing Debian packages; run: sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	fi

serve: setup-serve
	$(VENV)/bin/bentoml serve --host $(HOST) --port $(PORT)

test: setup system-deps
	$(PY) -m pytest

# Unit tests only: no server, no training, no deployment checks (see README, Tests).
test-fast: setup system-deps
	$(PY) -m pytest -q -m "$(FAST)"

# Raw ORT, a bare and a naive reference server, and the service under load -> BENCHMARKS.md.
bench: setup
	$(PY) -m bench.run

# One-shot GPU check (provider, FP32/FP16, IO binding, service vs naive, GPU utilisation);
# DRY=1 runs every step on the CPU provider.
bench-gpu: setup
	$(PY) -m bench.gpu $(if $(DRY),--dry-run --seconds 0.5 --load-seconds 2)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# Static types of the serving code (settings under [tool.mypy] in pyproject.toml).
typecheck: setup
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .bentoml-home .pytest_cache .ruff_cache .mypy_cache
