# syntax=docker/dockerfile:1
# The gateway's image. Two stages: the builder installs the project (a pure-Python wheel) and
# the runtime dependencies uv.lock pins, hashes checked, into /opt/venv (deploy/build-venv.sh,
# which deploy/check.sh also runs); the runtime stage is python:3.11-slim plus that venv, run as
# a non-root user.
#
#   docker build -t chat-dialect-gateway .
#   docker run -p 8080:8080 -e GATEWAY_REDIS_URL=redis://redis:6379/0 chat-dialect-gateway

# The builder is the same slim image: nothing is compiled, and the venv it makes runs there.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY scripts/uv-bootstrap.txt scripts/
COPY gateway/ gateway/
COPY adapters/ adapters/
COPY deploy/build-venv.sh deploy/
RUN --mount=type=cache,target=/root/.cache/uv sh deploy/build-venv.sh /opt/venv

FROM python:3.11-slim AS runtime
# Numeric user so that Kubernetes' runAsNonRoot can verify it without a runAsUser.
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway
COPY --from=builder /opt/venv /opt/venv
# Bytecode was compiled at install time; nothing is written at run time (read-only root fs).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# Liveness only (readiness, /readyz, is the orchestrator's business). No curl in slim: urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8080'), timeout=4)"]
# Open files: `gateway serve` raises its soft limit to the hard one (one descriptor per vendor
# session; it warns at start when that is below GATEWAY_MAX_SESSIONS + 1024). A Dockerfile cannot
# set the hard limit: `--ulimit nofile=65536:65536` or compose's `ulimits` (docs/scaling.md).
CMD ["gateway", "serve"]
