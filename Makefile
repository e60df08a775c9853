# kvtools.migration - set-up, tests, demo and packaging.  `make help` lists the targets.
#
# The two commands a new machine needs (Debian bookworm, as root):
#   make demo    install everything, start a local source and target, run playbooks/migrate.yml
#   make test    install everything, then unit + integration tests, ansible-test sanity, ansible-lint

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV ?= $(ROOT)/.venv
BUILD := $(ROOT)/.build
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2 --dist loadgroup --durations=25
# Directories ansible-lint checks once they hold any YAML.
LINT_DIRS := playbooks roles molecule

.PHONY: help setup test pytest sanity lint molecule molecule-podman build docs demo bench bench-verify compat bench-live bench-sync bench-cluster clean distclean

help:
	@echo 'make setup      install the system packages (apt) and the project venv + test servers (idempotent)'
	@echo 'make test       setup, then pytest (unit + integration, $(PYTEST_ARGS)), sanity and lint'
	@echo 'make pytest     unit + integration tests against real servers'
	@echo 'make sanity     ansible-test sanity on the git-tracked files (no ignore file)'
	@echo 'make lint       ansible-lint, production profile, on $(LINT_DIRS)'
	@echo 'make molecule   molecule test -s default (local Redis 7.0 -> Valkey 8.0 through playbooks/migrate.yml)'
	@echo 'make molecule-podman  install podman + the podman driver, then molecule test -s podman (the same in containers)'
	@echo 'make build      ansible-galaxy collection build into .build/'
	@echo 'make docs       regenerate docs/reference/ (modules and roles) from their documentation'
	@echo 'make demo       setup, then start a local Redis source and a TLS Valkey target and run playbooks/migrate.yml'
	@echo 'make bench      benchmark the copy against xargs+MIGRATE and a full sync (BENCH_ARGS=--scale 0.1 for a quick run)'
	@echo 'make bench-verify  benchmark kv_verify against KEYS + sort + diff (BENCH_ARGS=--scale 0.1 for a quick run)'
	@echo 'make compat     every ordered pair of the installed server versions through kv_dump_restore and kv_migrate,'
	@echo '                compared key by key (COMPAT_ARGS="--only redis74,valkey80" for a subset); prints the grid'
	@echo 'make bench-live    the writers pause of migrate.yml, live vs offline, an app writing (BENCH_ARGS=--scale 0.01)'
	@echo 'make bench-sync    benchmark kv_sync against a full sync, and its lag at 20k writes/s (BENCH_ARGS=--scale 0.1)'
	@echo 'make bench-cluster benchmark copies out of / into 3-master clusters against standalone kv_dump_restore (BENCH_ARGS=--keys 20000)'
	@echo 'make clean      remove .build/ and caches (keeps .venv/ and .servers/)'
	@echo 'make distclean  clean, and remove .venv/ and .servers/ too'

setup:
	bash tests/setup/install-system.sh
	bash tests/setup/install-python.sh

# Single targets set the venv up when it is missing; `make setup` refreshes it.
$(PYTHON):
	bash tests/setup/install-python.sh

# Every step runs even when an earlier one fails, so one run shows every problem; the exit status
# is non-zero when any step failed.  The last line is pytest's own summary line.
test: setup
	@failed=""; rm -f $(BUILD)/pytest.log; \
	$(MAKE) --no-print-directory pytest || failed="$$failed pytest"; \
	$(MAKE) --no-print-directory sanity || failed="$$failed sanity"; \
	$(MAKE) --no-print-directory lint || failed="$$failed lint"; \
	$(MAKE) --no-print-directory molecule || failed="$$failed molecule"; \
	echo; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; else echo "make test: pytest, sanity, lint and molecule passed"; fi; \
	tail -n 1 $(BUILD)/pytest.log 2>/dev/null || true; \
	[ -z "$$failed" ]

pytest: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(PYTHON) -m pytest $(PYTEST_ARGS) 2>&1 | tee $(BUILD)/pytest.log

sanity: | $(PYTHON)
	bash tests/setup/sanity.sh

lint: | $(PYTHON)
	@dirs=""; \
	for d in $(LINT_DIRS); do \
	  if [ -n "$$(find $$d \( -name '*.yml' -o -name '*.yaml' \) -print -quit 2>/dev/null)" ]; then dirs="$$dirs $$d"; fi; \
	done; \
	if [ -z "$$dirs" ]; then echo "lint: nothing to lint in $(LINT_DIRS)"; exit 0; fi; \
	collections=$$($(PYTHON) -c 'import sys; sys.path.insert(0, "."); from tests.support.ansible import ensure_collection_path; print(ensure_collection_path())'); \
	echo "ansible-lint (production profile):$$dirs"; \
	PATH="$(VENV)/bin:$$PATH" ANSIBLE_HOME="$(BUILD)/ansible-home" ANSIBLE_COLLECTIONS_PATH="$$collections" \
	  $(VENV)/bin/ansible-lint --nocolor $$dirs  # ANSIBLE_HOME: a copy installed in ~/.ansible (molecule) is not linted

molecule: | $(PYTHON)
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/molecule test -s default

# Not part of `make test`: about 2 minutes on a fresh machine (apt, debootstrap base image, server images), about
# 45 s once the images exist.  Needs root (podman runs the containers as root here).  See molecule/README.md.
molecule-podman: | $(PYTHON)
	bash tests/setup/install-podman.sh
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/molecule test -s podman

build: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(VENV)/bin/ansible-galaxy collection build --force --output-path $(BUILD) .

docs: | $(PYTHON)
	$(PYTHON) tests/support/gen_docs.py

demo: setup
	$(PYTHON) tests/support/demo.py

# Several minutes at full size; numbers are measurements, not pass/fail.  Results also in .build/bench.json.
BENCH_ARGS ?=
bench: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(PYTHON) tests/benchmarks/bench_copy.py --out $(BUILD)/bench.json $(BENCH_ARGS)

# About a minute at full size (1,000,000 keys).  Results also in .build/bench-verify.json.
bench-verify: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(PYTHON) tests/benchmarks/bench_verify.py --out $(BUILD)/bench-verify.json $(BENCH_ARGS)

# Every ordered pair of the installed versions (up to 10, plus Valkey 9.1 with rdb-version-check relaxed as a
# target), each through kv_dump_restore and kv_migrate: a few minutes.  Results also in .build/compat.json.
COMPAT_ARGS ?=
compat: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(PYTHON) tests/support/compat.py --out $(BUILD)/compat.json $(COMPAT_ARGS)

# Several minutes at full size (1,000,000 keys, an app writing 1,000 writes/s; the live and the offline strategy
# of playbooks/migrate.yml).  Results also in .build/bench-live.json.
bench-live: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(PYTHON) tests/benchmarks/bench_live.py --out $(BUILD)/bench-live.json $(BENCH_ARGS)

# Several minutes at full size (1M keys, 1 GiB, 30 s of writes).  Results also in .build/bench-sync.json.
bench-sync: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(PYTHON) tests/benchmarks/bench_sync.py --out $(BUILD)/bench-sync.json $(BENCH_ARGS)

# Several minutes at full size (1,000,000 keys; 3-master clusters; the standalone kv_dump_restore baseline in the
# same run).  Results also in .build/bench-cluster.json.
bench-cluster: | $(PYTHON)
	@mkdir -p $(BUILD)
	$(PYTHON) tests/benchmarks/bench_cluster.py --out $(BUILD)/bench-cluster.json $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) .pytest_cache tests/output .cache
	find . -path ./.venv -prune -o -path ./.servers -prune -o -name __pycache__ -type d -print0 | xargs -0 -r rm -rf

distclean: clean
	rm -rf $(VENV) .servers
