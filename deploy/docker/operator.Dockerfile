# syntax=docker/dockerfile:1
# Image of the operator (kopf + kubernetes client): operator/, the SDK's API models and
# Kubernetes layer (sdk/), the router's contract (router/, without its server).
# Build from the repository root:
#   docker build -f deploy/docker/operator.Dockerfile -t byollm/operator:0.1.0 .
# The base is pinned by tag; to pin by digest as well, pass
#   --build-arg PYTHON_IMAGE=python:3.12.8-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
WORKDIR /src
COPY router ./router
COPY sdk ./sdk
COPY operator ./operator
RUN /venv/bin/pip install ./router ./sdk ./operator && /venv/bin/pip uninstall -y pip setuptools wheel \
 && find /venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="byollm-operator" \
      org.opencontainers.image.source="https://github.com/byollm/byollm" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Non-root, numeric (runAsNonRoot can verify it); the root filesystem is read-only at run time.
USER 65532:65532
ENTRYPOINT ["byollm-operator"]
