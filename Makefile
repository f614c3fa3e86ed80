# Starmind: the two set-up commands are `make book` and `make test` (see README).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
PROFILE ?= report
# The study's data: a local TinyStories directory if this workplace has one, else the Hugging Face download.
DATA_DIR ?= $(wildcard ../shared/data/tinystories)
export STARMIND_DATA_DIR := $(abspath $(DATA_DIR))
NPM_DIRS := device/emulator device/virtualboard

.PHONY: all book study test setup sysdeps venv npm bench-train bench-device bench-micropython lab clean

all: book

# ---- set-up -----------------------------------------------------------------
.venv/.stamp: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $@

venv: .venv/.stamp

# Debian packages: the Arm cross compiler and newlib (RP2040 firmware), Chromium (book tests).
sysdeps:
	@if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v chromium >/dev/null \
	   || [ ! -f /usr/lib/arm-none-eabi/newlib/thumb/v6-m/nofp/libc.a ]; then \
	  echo "installing Debian packages (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    gcc-arm-none-eabi libnewlib-arm-none-eabi chromium >/dev/null; \
	fi

npm:
	@for d in $(NPM_DIRS); do \
	  if [ -f $$d/package.json ] && [ ! -f $$d/node_modules/.stamp ]; then \
	    (cd $$d && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp) || exit 1; \
	  fi; done

setup: venv sysdeps npm

# ---- the book ---------------------------------------------------------------
book: setup
	$(PY) -m starmind_lib.book.build build --profile $(PROFILE)

study:
	$(MAKE) book PROFILE=full

lab: setup
	.venv/bin/jupyter lab notebooks/

# ---- tests and benchmarks ---------------------------------------------------
test: setup
	.venv/bin/python -m pytest -q -x

bench-train: setup
	$(PY) -m starmind_lib.bench train

bench-device: setup
	$(PY) -m starmind_lib.bench device

bench-micropython: setup
	$(PY) -m starmind_lib.bench micropython

clean:
	rm -rf build book/_build book/_executed
