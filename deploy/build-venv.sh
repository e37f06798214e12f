#!/bin/sh
# Build the project's wheel and install it, with its dependencies, into a fresh virtual
# environment. The one copy of these steps: the Dockerfile's builder stage runs it, and
# deploy/check.sh runs it the same way (in a copy of the build context) to check them.
#
#   usage: sh deploy/build-venv.sh VENV     (run from the project's root)
set -eu
venv=${1:?usage: build-venv.sh VENV}
python=${PYTHON:-python3}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m venv "$venv"
# The wheel is built from the sources alone (PEP 517, isolated build), then installed like any
# other package: the venv holds no reference to the source tree.
"$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" .
"$venv/bin/python" -m pip install --quiet "$wheels"/*.whl
"$venv/bin/python" -m pip check >/dev/null
"$venv/bin/gateway" --version >/dev/null
