# resmagic: `make test` and `make demo` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint unit notebooks demo bench bench-ranks compat clean gpu-wheels gpu-check cgroup-v2 \
	labextension

# torch==2.13.0 first: a CPU build that lies on disk here; installing it before the
# project keeps pip from resolving `torch` to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e . --group test
	touch $(STAMP)

# The status bar item (labextension/, TypeScript): npm ci when package-lock.json changed,
# tsc and jupyter-builder when a source did (a stamp: a no-op run takes well under a second),
# the formatting unit test, then a link into the venv so its JupyterLab and Notebook 7 load
# the build with no `jupyter lab build`, and the server extension enabled there. Node 20 and
# npm from Debian (apt-get install nodejs npm).
labextension: $(STAMP)
	$(PY) labextension/build.py --link $(VENV)
	cd labextension && npx --no-install vitest run --silent

# importlinter: the layers contract in pyproject.toml ([tool.importlinter]): no import that
# points up, no circle, function-local imports included.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -c 'import sys; from importlinter.cli import lint_imports_command as lint; sys.exit(lint())'

unit: labextension
	$(PY) -m pytest

NBVAL := --nbval notebooks/ --nbval-current-env --nbval-sanitize-with notebooks/nbval-sanitize.cfg

notebooks: labextension
	$(PY) -m pytest $(NBVAL)

test: lint unit notebooks

demo: $(STAMP)
	$(PY) notebooks/demo.py

# cgroup v2 for real, in a VM (qemu, software emulation) on Debian's 6.1 and 6.12 kernels
# (tests/vm/cgroup-v2.sh says how); needs qemu-system-x86 and busybox-static.
cgroup-v2: $(STAMP)
	PY=$(abspath $(PY)) tests/vm/cgroup-v2.sh

# Not part of `make test`: the IPython-layer, reliability, differential and notebook tests again on older
# releases, in a venv of their own (~2 min): the floors pyproject.toml declares (IPython
# 8.17, ipykernel 6.29, ipywidgets 8.1.0), then IPython 9.7 with ipykernel 7.0. IPython 8 and
# 9.0-9.7 count cells after running them, 9.8 and later before; ipykernel 7.0 was the
# first to route output by the cell's context.
COMPAT_VENV ?= .venv-ipykernel-compat
COMPAT_PY := $(COMPAT_VENV)/bin/python
COMPAT_SETS ?= ipython==8.17.2,ipykernel==6.29.5,ipywidgets==8.1.0 \
	ipython==9.7.0,ipykernel==7.0.1,ipywidgets==8.1.0

compat:
	test -x $(COMPAT_PY) || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_PY) -m pip install --quiet torch==2.13.0
	$(COMPAT_PY) -m pip install --quiet -e . pytest hypothesis pandas nbclient jupyter_client nbval
	set -e; for set in $(COMPAT_SETS); do \
		$(COMPAT_PY) -m pip install --quiet $$(echo $$set | tr , ' '); \
		echo "== $$set"; \
		$(COMPAT_PY) -m pytest -q -p no:cacheprovider tests/ipython tests/reliability tests/differential; \
		$(COMPAT_PY) -m pytest -q -p no:cacheprovider $(NBVAL); \
	done

# The benchmark has a venv of its own, so the peers it measures never sit beside the tests.
# torch==2.13.0 first, as above. ipyexperiments goes in with --no-deps: it requires the
# deprecated `pynvml` shim, which installs a .pth import hook into every interpreter start;
# what it really needs (IPython, psutil, `import pynvml` from nvidia-ml-py) is already there.
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet torch==2.13.0
	$(BENCH_PY) -m pip install --quiet -e . --group bench
	$(BENCH_PY) -m pip install --quiet --no-deps ipyexperiments==0.1.29
	touch $(BENCH_STAMP)

# Not part of `make test`: prints the tables and rewrites docs/benchmarks.md (~6 min, 2 cores).
# resmagic's own cells are timed again, in the same run, as of BENCH_BEFORE (main before the
# benchmark's fixes) and with the proposed patches in benchmarks/ applied.
BENCH_BEFORE ?= b912d9d
# Table 6 (the library form, benchmarks/library.py) is compared with the base of the hot-path
# work of issue 26 instead.
LIBRARY_BEFORE ?= 8eba587
BENCH_PATCHES := $(wildcard benchmarks/proposed-*.patch)

bench: $(BENCH_STAMP)
	$(BENCH_PY) benchmarks/run.py --write docs/benchmarks.md --json build/benchmarks.json \
		--before $(BENCH_BEFORE) --library-before $(LIBRARY_BEFORE) \
		$(addprefix --patch ,$(BENCH_PATCHES))

# Not part of `make bench` (it starts 2 then 4 rank processes that import torch, ~1-2 min):
# what gathering every rank's row costs per scope, beside the collectives; its tables go by
# hand into benchmarks/notes.md ("Issue 28").
bench-ranks: $(STAMP)
	nice -n 10 $(PY) benchmarks/ranks_cost.py 300

# The GPU machine (Python 3.12, CUDA torch, nvidia-ml-py, no network) lacks IPython and the
# kernel: `make gpu-wheels` here puts what it needs, and a wheel of resmagic, in
# build/gpu-wheels (carry that folder with the tree); `make gpu-check` there installs them in
# a venv over its own packages and checks everything GPU (benchmarks/gpu_check.py). Without
# a GPU it says so in one line and exits 0.
GPU_WHEELS := build/gpu-wheels
GPU_PLATFORMS := $(addprefix --platform ,manylinux_2_28_x86_64 manylinux_2_17_x86_64 \
	manylinux2014_x86_64 linux_x86_64)

gpu-wheels: $(STAMP)
	rm -rf $(GPU_WHEELS) && mkdir -p $(GPU_WHEELS)
	$(PY) -m pip download --quiet --only-binary=:all: --python-version 3.12 \
		--implementation cp $(GPU_PLATFORMS) -d $(GPU_WHEELS) \
		ipython ipykernel ipywidgets jupyter_client nvidia-ml-py psutil
	$(PY) -m pip wheel --quiet --no-deps -w $(GPU_WHEELS) .
	@du -sh $(GPU_WHEELS)

gpu-check:
	python3 benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(COMPAT_VENV) build .pytest_cache .mypy_cache .ruff_cache \
		labextension/node_modules labextension/lib labextension/dist
