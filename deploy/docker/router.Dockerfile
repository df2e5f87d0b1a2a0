# syntax=docker/dockerfile:1
# Image of a tenant's router: the data plane and its contract only (router/, no kopf,
# no Kubernetes client, no operator code).
# Build from the repository root:
#   docker build -f deploy/docker/router.Dockerfile -t byollm/router:0.1.0 .
# The base is pinned by tag; to pin by digest as well, pass
#   --build-arg PYTHON_IMAGE=python:3.12.8-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
WORKDIR /src
COPY router ./router
# Bytecode is compiled here, once: the root filesystem is read-only at run time, so without
# it every start would compile every module again (3-4x the start time, ~10 MB more RSS).
# unchecked-hash: the .pyc files hold no build timestamps and are never re-validated.
RUN /venv/bin/pip install "./router[server]" && /venv/bin/pip uninstall -y pip setuptools wheel \
 && find /venv -name __pycache__ -prune -exec rm -rf {} + \
 && /venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="byollm-router" \
      org.opencontainers.image.source="https://github.com/byollm/byollm" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /venv /venv
# The standard library's bytecode too (some Python base images ship it without; a few
# of its test-data files never compile, hence "|| true").
RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" >/dev/null || true
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Non-root, numeric (runAsNonRoot can verify it); the root filesystem is read-only at run time.
USER 65532:65532
ENTRYPOINT ["byollm-router"]
