# Starmind: the two set-up commands are `make book` and `make test` (see README).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
PROFILE ?= report
# The study's data: a local TinyStories directory if this workplace has one, else the Hugging Face download.
DATA_DIR ?= $(wildcard ../shared/data/tinystories)
export STARMIND_DATA_DIR := $(abspath $(DATA_DIR))
NPM_DIRS := device/emulator device/virtualboard

.PHONY: all book wasm study study-v2 test setup sysdeps venv npm bench-train bench-device bench-micropython bench-planner lab clean

all: book

# ---- set-up -----------------------------------------------------------------
.venv/.stamp: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $@

venv: .venv/.stamp

# Debian packages: the Arm cross compiler and newlib (RP2040 firmware), Chromium (book tests),
# clang + lld + wasi-libc (the C runtime as WebAssembly for the book's story widget, device/wasm).
sysdeps:
	@if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v chromium >/dev/null \
	   || [ ! -f /usr/lib/arm-none-eabi/newlib/thumb/v6-m/nofp/libc.a ] \
	   || ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then \
	  echo "installing Debian packages (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    gcc-arm-none-eabi libnewlib-arm-none-eabi chromium clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null; \
	fi

npm:
	@for d in $(NPM_DIRS); do \
	  if [ -f $$d/package.json ] && [ ! -f $$d/node_modules/.stamp ]; then \
	    (cd $$d && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp) || exit 1; \
	  fi; done

setup: venv sysdeps npm

# ---- the book ---------------------------------------------------------------
book: setup wasm
	$(PY) -m starmind_lib.book.build build --profile $(PROFILE)

# The C runtime as WebAssembly (device/wasm) for the story widget; skipped, saying why, without clang/lld/wasi-libc.
wasm:
	@if msg=$$($(MAKE) -s --no-print-directory -C device/wasm check 2>/dev/null); then $(MAKE) -s -C device/wasm; \
	else echo "[wasm] skipped: $$msg; the book's story widget will say it is unavailable (make sysdeps)"; fi

study:
	$(MAKE) book PROFILE=full

# Study v2's training alone (all tiers, resuming into data/results/sweep/study_v2); STUDY_PARAMS='{"workers": 2, ...}'
study-v2: setup
	$(PY) -m starmind_lib.training.study prepare --source $(if $(STARMIND_DATA_DIR),local,tinystories) \
	  --data-dir "$(STARMIND_DATA_DIR)" --out data/runs/study_data
	$(PY) -m starmind_lib.training.study run --data data/runs/study_data --params '$(or $(STUDY_PARAMS),{})'

lab: setup
	.venv/bin/jupyter lab notebooks/

# ---- tests and benchmarks ---------------------------------------------------
test: setup wasm
	.venv/bin/python -m pytest -q -x

bench-train: setup
	$(PY) -m starmind_lib.bench train

bench-device: setup
	$(PY) -m starmind_lib.bench device

# PORT=emulated (MicroPython firmware in rp2040js), emulated:FIRMWARE.bin, or a real board's port
bench-micropython: setup
	$(PY) -m starmind_lib.bench micropython $(if $(PORT),--port $(PORT))

# The MicroPython planner's speed on models left out of its fit (predicted vs emulated stock firmware)
bench-planner: setup
	$(PY) -m starmind_lib.devices.calibration --holdout

clean:
	rm -rf build book/_build book/_executed
