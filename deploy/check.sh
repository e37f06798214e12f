#!/usr/bin/env bash
# Checks the container and deployment files on a machine with no Docker engine and no cluster,
# only Python 3.11+ and pip (with PyPI). Quiet on success; on failure says what and shows logs.
#   1. the Dockerfile's builder stage: its COPY lines (less .dockerignore) into a temp dir, then
#      its RUN (deploy/build-venv.sh: wheel → fresh venv), exactly as written;
#   2. compose (structure, settings through the gateway's own loader) and nginx.conf;
#   3. deploy/k8s against the Kubernetes schemas (kubernetes-validate, offline) plus cross-checks;
#   4. the runtime stage: the image's CMD from that venv with the image's ENV, /healthz and
#      /readyz answer 200, the HEALTHCHECK (and compose's) pass, SIGTERM closes a subscribed
#      socket with 1001 and exits 0 within GATEWAY_SHUTDOWN_TIMEOUT_S, logs are JSON.
# The commands are read from the Dockerfile and manifests (deploy/check.py), never repeated here.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/gateway-deploy-check.XXXXXX")
tools=""
cleanup() {
  if [ -n "$tools" ]; then kill "$tools" 2>/dev/null || true; wait "$tools" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The validation tools (uv.lock's `deploy` group: kubernetes-validate, PyYAML with it), installed
# while the image builds.
UV_PROJECT_ENVIRONMENT="$work/tools" ./dev uv sync --locked --only-group deploy \
  --python "$PYTHON" >"$work/tools.log" 2>&1 &
tools=$!

"$PYTHON" deploy/check.py build "$work"

status=0
wait "$tools" || status=$?
tools=""
if [ "$status" -ne 0 ]; then
  echo "deploy/check: installing kubernetes-validate failed" >&2
  sed 's/^/  | /' "$work/tools.log" >&2
  exit 1
fi
"$work/tools/bin/python" deploy/check.py run "$work"
