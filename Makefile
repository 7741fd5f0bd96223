# Every target creates the virtual environment on first use (from pyproject.toml only).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.projbench-installed
PYTEST_ARGS ?=

.PHONY: run run-study test test-slow bench gpu-check lint docs clean-venv

$(STAMP): pyproject.toml plugins/projbench-srht/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,ray,fast]' -e ./plugins/projbench-srht
	touch $(STAMP)

## make run: the main job — every suite for fastjl on the embedded defaults (< 1 min on 2 cores)
run: $(STAMP)
	$(VENV)/bin/projbench run --proj fastjl

## make run-study: the d_int90 table of FC and LeNet on a laptop budget (cpu-budget preset; needs PROJBENCH_DATA)
run-study: $(STAMP)
	$(VENV)/bin/projbench study cpu-budget --out runs/cpu-budget --jobs 2

## make test: the default test suite (slow tests excluded; real-data tests need PROJBENCH_DATA)
# pytest exits 5 when no test was collected (e.g. all deselected): say so instead of a bare failure.
test: $(STAMP)
	@$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): nothing to check, not a failure"; exit 0; fi; \
	exit $$rc

## make test-slow: only the long, real-data tests
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

## make bench: benchmarks; writes side-by-side ratios to results/
bench: $(STAMP)
	$(PY) -m benchmarks.bench_ratios --threads 1
	$(PY) -m benchmarks.bench_allocator --resnet
	$(PY) -m benchmarks.bench_fwht
	$(PY) -m benchmarks.bench_projections
	$(PY) -m benchmarks.bench_subspace
	$(PY) -m benchmarks.bench_study
	$(PY) -m benchmarks.bench_epoch

## make gpu-check: on a machine with CUDA, the GPU tests and the CUDA ratios (fastfood/fastjl
## backward ÷ forward up to D = 2^24, subspace steps) into results/*_cuda_gpu.*
gpu-check: $(STAMP)
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA device here')"
	$(PY) -m pytest -q -k cuda
	$(PY) -m benchmarks.bench_ratios --device cuda --tag gpu

## make docs: the documentation site (mkdocs-material) into build/site; strict, so a warning —
## a broken link or anchor, a stale reference to the code — fails it. Installs the `docs` extra.
## (NO_MKDOCS_2_WARNING silences mkdocs-material's banner about its own end of life.)
DOCS_STAMP := $(VENV)/.projbench-docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check projbench tests plugins benchmarks
	$(VENV)/bin/mypy projbench

clean-venv:
	rm -rf $(VENV)
