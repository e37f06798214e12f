#!/bin/sh
# Install the project and exactly the runtime dependencies uv.lock pins (hashes checked) into a
# fresh virtual environment. The one copy of these steps: the Dockerfile's builder stage runs
# it, and deploy/check.sh runs it the same way (in a copy of the build context) to check them.
#
#   usage: sh deploy/build-venv.sh VENV     (run from the project's root)
set -eu
venv=${1:?usage: build-venv.sh VENV}
python=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT

# uv, pinned with its hashes (scripts/uv-bootstrap.txt), in a throwaway venv of its own.
"$python" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
  --no-deps -r scripts/uv-bootstrap.txt
# The project is built into a wheel (pure Python, the backend pinned in pyproject.toml) and
# installed like any other package: the venv holds no reference to the source tree. --locked:
# the lock as committed (an error if it no longer matches pyproject.toml). With the [otel] extra:
# an image can trace as soon as its OTEL_* environment says so (docs/observability.md).
UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$venv" "$tools/bin/uv" sync --quiet --locked \
  --no-editable --compile-bytecode --extra otel --python "$python"
"$tools/bin/uv" pip check --quiet --python "$venv/bin/python"
"$venv/bin/gateway" --version >/dev/null
