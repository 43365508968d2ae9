# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-peers clean install gpu-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/neurons-jax demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_labels.py
	$(PY) benchmarks/bench_augment.py
	$(PY) benchmarks/bench_blockwise.py
	$(PY) benchmarks/bench_pipeline.py

# Our Loader beside gunpowder, torch-em and MONAI, each in its own venv (benchmarks/peers/setup.sh
# makes those that are missing); ARGS=--quick for a short check
bench-peers: $(STAMP)
	bash benchmarks/peers/setup.sh || echo "bench-peers: a peer venv is missing; its rows report why"
	$(PY) benchmarks/bench_peers.py $(ARGS)

# On a machine with a GPU: gpu tests on real CuPy + every GPU benchmark row -> $(OUT)/gpu_check.{json,log}
# (WHEELS=DIR installs benchmarks/gpu_wheels.txt without package access; DATA=DIR holds ../shared/data)
gpu-check:
	bash benchmarks/gpu_check.sh "$(OUT)" "$(WHEELS)" "$(DATA)"

clean:
	rm -rf $(VENV) demo_out build *.egg-info
