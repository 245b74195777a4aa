# Two entry points a newcomer needs; each creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench clean system-deps

# Real peers some tests drive: Debian's chromium (pay pages, status page) and tmux (the TUI as a
# person uses it). Installed when missing and we are root on Debian; otherwise those tests skip and
# name what is missing.
SYSTEM_DEPS := chromium tmux

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sovterm demo

system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
		echo "could not install$$missing; the tests that need them will skip"; \
	fi

test: $(STAMP) system-deps
	$(BIN)/ruff check sovterm tests bench
	$(BIN)/python -m pytest -n 2 --dist worksteal -q

# The property tests with many fresh examples each (tests/fuzz/conftest.py, profile `long`).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist .pytest_cache
