# Kubernel: one install, one run, one test command.
#   make run     start the local control plane (unless KUBECONFIG names a reachable cluster)
#   make test    install everything, build or reuse the binaries, run the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The real node's Debian packages (containerd, runc, CNI plugins, registry, image tools).
# Installed when missing (needs root); KUBERNEL_REAL_NODE=0 runs the test bed without it.
node-packages:
	@[ "$${KUBERNEL_REAL_NODE:-1}" = 0 ] || bash cluster/node-packages.sh

.PHONY: check node-packages venv binaries cluster cluster-down deploy deploy-images undeploy run test unit fault bench bench-smoke crds kind kind-down clean image rotate-key

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

cluster: venv binaries node-packages
	@$(PY) -m kubernel_testbed up

cluster-down: venv
	@$(PY) -m kubernel_testbed down

# The chart on the test bed's real node: the service image (make image), Traefik, and
# `helm upgrade --install kubernel` in namespace kubernel; credentials in .local/deploy.env.
deploy: cluster
	@$(PY) -m kubernel_testbed.deploy up

# The README's uninstall story: sessions first (the operator removes their finalizers),
# then helm uninstall and the namespace.
undeploy: venv
	@$(PY) -m kubernel_testbed.deploy down

# The whole service in the foreground: the control plane (unless KUBECONFIG names
# a cluster), the CRDs, the bootstrap keypair (.local/backend.env), the operator
# and the API. Ctrl-C stops the operator and the API; `make cluster-down` the rest.
run: cluster
	@source <($(PY) -m kubernel_testbed env) && exec $(PY) -m kubernel_testbed run

# A new secret key for make run's superadmin keypair (.local/backend.env rewritten, 0600):
# the old key is refused from the next request and its event streams close.
rotate-key: venv
	@source <($(PY) -m kubernel_testbed env) && $(PY) -m kubernel_api keypair rotate \
		--env-file .local/backend.env --endpoint http://127.0.0.1:8090

unit: venv binaries
	@$(PY) -m pytest -m "not integration" -q

# The fault-injection suite alone (it also runs in `make test`).
fault: venv binaries node-packages
	@$(PY) -m pytest -m fault -q

# Kubernel against plain Pods on a test bed of its own (delays 0): a table, and
# the figures in .local/bench/results.json. About 30 minutes (10,000 sessions);
# BENCH_ARGS="--quick" about 2, "--phases fanout --profile" one phase, profiled.
bench: venv binaries node-packages
	@$(PY) -m bench $(BENCH_ARGS)

# Every phase of the bench, small (--quick): part of `make test`, so that a later
# limit or change cannot break the bench unseen. Its figures are not the bench's.
bench-smoke: venv binaries node-packages
	@echo "[bench-smoke] python -m bench --quick: every phase, small counts"
	@$(PY) -m bench --quick --out .local/bench-smoke

# The CRD is generated from the model; the chart carries an identical copy of crds/,
# and its values schema's `images` is generated from the image table's model.
crds: venv
	@$(PY) -m kubernel.crd crds
	@rm -f helm/kubernel/crds/*.yaml && cp crds/*.yaml helm/kubernel/crds/
	@$(PY) -m kubernel.chartschema
	@echo "[make] crds/ regenerated and copied into helm/kubernel/crds/; the chart's images schema regenerated"

# The service image from the Dockerfile, without a Docker engine: buildah on a local
# build of its python:3.11.14-slim-bookworm base (cached), pushed to the running test
# bed's registry as registry.kubernel.test/kubernel/kubernel:$(IMAGE_TAG); prints the
# reference by digest. Needs root and buildah (make node-packages). docs/image.md.
IMAGE_TAG ?= dev
image: venv
	@$(PY) -m kubernel_testbed.serviceimage push --tag '$(IMAGE_TAG)'

# A kind cluster with the chart installed from a locally built image. Needs Docker,
# kind and helm on PATH. NOT RUN HERE: this machine has no Docker engine.
KIND_CLUSTER ?= kubernel
KIND_IMAGE ?= kubernel:dev
kind:
	@command -v docker >/dev/null && command -v kind >/dev/null && command -v helm >/dev/null \
	  || { echo "make kind needs docker, kind (go install sigs.k8s.io/kind@v0.29.0) and helm on PATH"; exit 1; }
	@echo "[kind 1/4] cluster $(KIND_CLUSTER)"
	@kind get clusters | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name '$(KIND_CLUSTER)' --wait 120s
	@echo "[kind 2/4] docker build -t $(KIND_IMAGE) ."
	@docker build -t '$(KIND_IMAGE)' .
	@echo "[kind 3/4] kind load docker-image $(KIND_IMAGE)"
	@kind load docker-image '$(KIND_IMAGE)' --name '$(KIND_CLUSTER)'
	@echo "[kind 4/4] helm upgrade --install kubernel (namespace kubernel), waiting for the rollout"
	@helm upgrade --install kubernel helm/kubernel --kube-context 'kind-$(KIND_CLUSTER)' -n kubernel \
	  --create-namespace --wait --timeout 5m --set image.repository='$(word 1,$(subst :, ,$(KIND_IMAGE)))' \
	  --set image.tag='$(word 2,$(subst :, ,$(KIND_IMAGE)))' --set image.pullPolicy=Never

kind-down:
	kind delete cluster --name '$(KIND_CLUSTER)'

# Every image of the real node (its own, the service image, Traefik), built before pytest
# starts: minutes on a cold cache (debootstrap, a CPython and a Traefik compile), seconds
# when cached.
deploy-images: venv node-packages
	@$(PY) -m kubernel_testbed.deploy build

# The house's checks, first in `make test`: lint and format (ruff), types (mypy; strict on
# the pure modules), the layering contracts (import-linter). Config in pyproject.toml;
# docs/architecture.md says what each contract keeps.
PY_FOLDERS := kubernel operator api cluster bench tests testkit
check: venv
	@echo "[check 1/4] ruff check"
	@$(VENV)/bin/ruff check --quiet $(PY_FOLDERS)
	@echo "[check 2/4] ruff format --check"
	@$(VENV)/bin/ruff format --check --quiet $(PY_FOLDERS)
	@echo "[check 3/4] mypy"
	@$(VENV)/bin/mypy -p kubernel -p kubernel_operator -p kubernel_api -p kubernel_testbed -p kubernel_runner -p kubernel_testkit
	@echo "[check 4/4] lint-imports"
	@set -o pipefail; $(VENV)/bin/lint-imports --no-cache | tail -n +18  # the banner off; its status kept

test: venv check binaries node-packages $(BAI_STAMP) deploy-images
	@$(PY) -m pytest
	@$(MAKE) --no-print-directory bench-smoke

clean: cluster-down
	rm -rf .local $(VENV) $(BAI_VENV)
