# Two commands on a fresh machine: `make serve` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := dataset-fashion-mnist prometheus

export BENTOML_DO_NOT_TRACK := true
export BENTOML_HOME ?= $(CURDIR)/.bentoml-home

.PHONY: setup system-deps serve test lint format bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of PyTorch; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[cpu,train,dev]'
	touch $@

system-deps:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	else \
		echo "missing Debian packages; run: sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	fi

serve: setup system-deps
	$(VENV)/bin/bentoml serve --host 0.0.0.0 --port 3000

test: setup system-deps
	$(PY) -m pytest

# Raw ORT, a bare and a naive reference server, and the service under load -> BENCHMARKS.md.
bench: setup
	$(PY) -m bench.run

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .bentoml-home .pytest_cache .ruff_cache
