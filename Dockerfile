# syntax=docker/dockerfile:1
# The Kubernel service image: the operator and the API (the Pod's command picks one).
#   docker build -t kubernel:dev .
# Only what runs goes in: the pinned Python packages and our three import packages;
# no compiler, no tests, no test bed, no pip cache. Checked without a Docker engine
# by hadolint and tests/unit/test_image.py.

# python:3.11.14-slim-bookworm, pinned by digest (multi-arch index).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kubernel
COPY docker/requirements.txt /tmp/requirements.txt
# Wheels only: no package's build script runs during the build (every pin has one).
RUN /opt/kubernel/bin/pip install --no-compile --only-binary=:all: -r /tmp/requirements.txt \
 && /opt/kubernel/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kubernel" \
      org.opencontainers.image.description="Backend.AI kernel-session API (v4.20190615) on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kubernel/kubernel"
# A name for UID 10001: kopf's peering identity (getpass.getuser) and anything else that
# looks the running user up in /etc/passwd fails without one.
RUN groupadd --gid 10001 kubernel \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kubernel
COPY --from=build /opt/kubernel /opt/kubernel
COPY kubernel /app/kubernel
COPY operator/kubernel_operator /app/kubernel_operator
COPY api/kubernel_api /app/kubernel_api
# The root filesystem is read-only in the chart: no .pyc files, logs unbuffered.
ENV PATH=/opt/kubernel/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
EXPOSE 8090 8081
CMD ["python", "-m", "kubernel_api", "serve"]
