# Kubernel: one install, one run, one test command.
#   make run     start the local control plane (unless KUBECONFIG names a reachable cluster)
#   make test    install everything, build or reuse the binaries, run the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv binaries cluster cluster-down run test unit clean

$(STAMP): pyproject.toml
	@echo "[make] creating the virtual environment in $(VENV) and installing the project"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

venv: $(STAMP)

# The published Backend.AI 19.09 client, in its own virtualenv (its pins clash with ours).
BAI_VENV := .venv-bai19
BAI_STAMP := $(BAI_VENV)/.installed
$(BAI_STAMP): tests/client/requirements-bai19.txt
	@echo "[make] installing the Backend.AI 19.09 client into $(BAI_VENV)"
	@test -x $(BAI_VENV)/bin/python || $(PYTHON) -m venv $(BAI_VENV)
	@$(BAI_VENV)/bin/python -m pip install --quiet --no-deps -r tests/client/requirements-bai19.txt
	@touch $@

binaries:
	@bash cluster/build.sh >/dev/null

cluster: venv binaries
	@$(PY) -m kubernel_testbed up

cluster-down: venv
	@$(PY) -m kubernel_testbed down

# The whole service in the foreground: the control plane (unless KUBECONFIG names
# a cluster), the CRDs, the bootstrap keypair (.local/backend.env), the operator
# and the API. Ctrl-C stops the operator and the API; `make cluster-down` the rest.
run: cluster
	@source <($(PY) -m kubernel_testbed env) && exec $(PY) -m kubernel_testbed run

unit: venv
	@$(PY) -m pytest -m "not integration" -q

test: venv binaries $(BAI_STAMP)
	@$(PY) -m pytest

clean: cluster-down
	rm -rf .local $(VENV) $(BAI_VENV)
