#!/usr/bin/env bash
# Checks the container and deployment files on a machine with no Docker engine, no cluster and
# no network beyond the package index: the tools come from uv.lock's `deploy` group and run
# offline (every proxy points at a closed port). Quiet on success; on failure says what and
# shows the tool's report.
#   1. the ecosystem's linters: hadolint and checkov (Dockerfile); check-jsonschema with the
#      compose-spec schema (shipped in check-jsonschema) and compose-lint (compose);
#      kubernetes-validate --strict on the oldest supported and the newest Kubernetes, and
#      checkov (deploy/k8s); gixy (nginx.conf, against the nginx release compose runs);
#   2. deploy/check.py build: the Dockerfile's builder stage without Docker (its COPY lines less
#      .dockerignore, then deploy/build-venv.sh: wheel → fresh venv);
#   3. deploy/check.py run: what no tool checks — the files against each other and against the
#      gateway's settings loader, then the runtime stage from that venv (probes, healthchecks,
#      SIGTERM drain with a subscribed socket, JSON logs).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/gateway-deploy-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! UV_PROJECT_ENVIRONMENT="$work/tools" ./dev uv sync --locked --only-group deploy \
  --python "$PYTHON" >"$work/tools.log" 2>&1; then
  echo "deploy/check: installing the deploy tools (uv.lock's deploy group) failed" >&2
  sed 's/^/  | /' "$work/tools.log" >&2
  exit 1
fi
bin="$work/tools/bin"

offline() {  # run a tool with no way out but loopback
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9 \
    https_proxy=http://127.0.0.1:9 NO_PROXY= no_proxy= "$@"
}

lint() {  # lint NAME COMMAND…: quiet unless the tool fails
  local name=$1
  shift
  if ! offline "$@" >"$work/lint.log" 2>&1; then
    echo "deploy/check: $name failed:" >&2
    sed 's/^/  | /' "$work/lint.log" >&2
    exit 1
  fi
}

manifests=()
for file in deploy/k8s/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
# The nginx release compose runs (an exact version: gixy reports the CVEs it is exposed to).
nginx_version=$(sed -n 's/^ *image: nginx:\([0-9][0-9.]*\)-alpine.*/\1/p' deploy/docker-compose.yml)
if [ -z "$nginx_version" ]; then
  echo "deploy/check: deploy/docker-compose.yml: the lb must run nginx:X.Y.Z-alpine" >&2
  exit 1
fi

lint hadolint "$bin/hadolint" --failure-threshold info Dockerfile
lint "compose-spec schema" "$bin/check-jsonschema" --builtin-schema vendor.compose-spec \
  deploy/docker-compose.yml deploy/docker-compose.sentinel.yml deploy/docker-compose.cluster.yml
lint compose-lint "$bin/compose-lint" check --fail-on low --strict-config \
  --config deploy/.compose-lint.yml -q deploy/docker-compose.yml
for version in 1.29.0 latest; do  # the oldest Kubernetes we support, and the newest it knows
  args=(--strict --quiet)
  [ "$version" = latest ] || args+=(-k "$version")
  lint "kubernetes-validate ($version)" "$bin/kubernetes-validate" "${args[@]}" "${manifests[@]}"
done
lint checkov "$bin/checkov" --quiet --compact --skip-download --framework kubernetes dockerfile \
  -d deploy/k8s -f Dockerfile
lint gixy "$bin/gixy" --nginx-version "$nginx_version" deploy/nginx.conf

"$bin/python" deploy/check.py build "$work"
"$bin/python" deploy/check.py run "$work"
