# syntax=docker/dockerfile:1
# sovterm container image: the daemon in the foreground, all
# state in the /data volume. Used as is on Umbrel and as the base of the StartOS
# wrapper (packaging/start9/Dockerfile).
#
# Multi-arch: no architecture-specific step below; every dependency ships wheels for
# linux/amd64 and linux/arm64, so
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/sovterm:<version> --push .
# builds both from the same file.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: build the wheel and install it with its dependencies into a venv ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sovterm ./sovterm
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/sovterm \
 && /opt/sovterm/bin/pip install /dist/*.whl

# --- runtime: slim Python, the venv, an unprivileged user ---
FROM ${PYTHON_IMAGE} AS runtime
ARG SOVTERM_UID=1000
ARG SOVTERM_GID=1000
# uid/gid 1000 matches Umbrel's app data ownership (user: "1000:1000").
RUN groupadd --gid "${SOVTERM_GID}" sovterm \
 && useradd --uid "${SOVTERM_UID}" --gid "${SOVTERM_GID}" --home-dir /data \
      --no-create-home --shell /bin/sh sovterm \
 && install -d -o "${SOVTERM_UID}" -g "${SOVTERM_GID}" -m 0700 /data
COPY --from=builder /opt/sovterm /opt/sovterm

# Container defaults for the daemon and for `docker exec ... sovterm tui`, which
# inherits this environment and so finds the same control socket.
ENV PATH=/opt/sovterm/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOVTERM_DATA_DIR=/data \
    SOVTERM_LISTENER__HOST=0.0.0.0 \
    SOVTERM_LISTENER__PORT=8080 \
    SOVTERM_CONTROL__SOCKET=/data/run/control.sock

VOLUME ["/data"]
EXPOSE 8080
USER 1000:1000
WORKDIR /data

# Readiness, not just liveness: /readyz answers 503 until the database is open and
# the listener is serving. Python's urllib is enough, so the image needs no curl;
# urlopen raises on any non-2xx answer, which makes the check exit non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SOVTERM_LISTENER__PORT', '8080'), timeout=4)"]

# SIGTERM drains in-flight work and exits 0; compose's `init: true` (or tini on
# StartOS) reaps children and forwards signals.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sovterm"]
CMD ["daemon"]
