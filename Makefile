# agridrone — everything a new machine needs is installed here, into .venv.
#   make demo   set up and fly the demo on the built-in simulator
#   make test   set up (with the training extra) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test setup setup-dev clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agridrone needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[litert]'
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[litert,dev,train]'
	@touch $@ $(VENV)/.stamp-run

setup: $(VENV)/.stamp-run
setup-dev: $(VENV)/.stamp-dev

demo: $(VENV)/.stamp-run
	$(BIN)/agridrone demo

test: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
