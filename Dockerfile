# One image for the whole fleet: `python -m orchestrator` (the default) or `python -m runner`,
# and the `polyfleet` CLI. Build from the repository root:
#
#   docker build -t polyfleet:0.1.0 .
#   docker run --rm polyfleet:0.1.0 polyfleet version
#   docker run ... polyfleet:0.1.0                          # the orchestrator
#   docker run ... polyfleet:0.1.0 python -m runner         # a runner
#
# Dependencies come from uv.lock only (`uv sync --frozen`), without the dev group and without
# the `dev` extra: no Temporal dev server, no compilers, no test tools. docs/operations.md,
# "Container image", says what the image holds and how to configure it.

# The project's Python (pyproject: requires-python >=3.11, mypy python_version 3.11).
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtual environment in /opt/polyfleet from the lockfile ------------------------
FROM ${PYTHON_IMAGE} AS build
# uv pinned; the same version the Makefile's bootstrap installs today.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/polyfleet
WORKDIR /src
# Third-party dependencies first: this layer changes only with the lockfile.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-editable
# Then the project itself, installed as a wheel (not editable): /src is not needed at run time.
COPY README.md ./
COPY polyfleet ./polyfleet
COPY orchestrator ./orchestrator
COPY runner ./runner
COPY store ./store
COPY examples ./examples
RUN uv sync --frozen --no-dev --no-editable

# --- runtime: the slim Python image, the environment, a non-root user -----------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="polyfleet" \
      org.opencontainers.image.description="A polyglot Temporal worker fleet: orchestrator (python -m orchestrator) and runners (python -m runner)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.documentation="docs/operations.md#container-image"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/polyfleet/bin:${PATH}" \
    POLYFLEET_DATA_DIR=/var/lib/polyfleet
# A fixed UID/GID, so volumes and Kubernetes securityContext (runAsUser: 10001) agree.
# /var/lib/polyfleet: the orchestrator's LMDB; /etc/polyfleet: mounted credentials.
RUN groupadd --system --gid 10001 polyfleet \
    && useradd --system --uid 10001 --gid polyfleet --no-create-home \
       --home-dir /var/lib/polyfleet --shell /usr/sbin/nologin polyfleet \
    && mkdir -p /var/lib/polyfleet /etc/polyfleet \
    && chown polyfleet:polyfleet /var/lib/polyfleet /etc/polyfleet \
    && chmod 0700 /var/lib/polyfleet /etc/polyfleet
COPY --from=build /opt/polyfleet /opt/polyfleet
USER 10001:10001
WORKDIR /var/lib/polyfleet
# The gRPC API (POLYFLEET_API_ADDRESS) and the HTTP API and dashboard (POLYFLEET_HTTP_ADDRESS);
# off loopback both need TLS and tokens (docs/security.md).
EXPOSE 7234 7280
CMD ["python", "-m", "orchestrator"]
