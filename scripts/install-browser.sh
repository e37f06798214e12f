#!/usr/bin/env bash
# Install what the console's browser tests (tests/console/) need, when it is missing:
#   - Debian's `chromium` package (/usr/bin/chromium), from apt;
#   - the `playwright` Python package, into the current venv (or $GATEWAY_VENV, else .venv).
# Playwright only drives that system Chromium: never run `playwright install` (it downloads a
# browser build of its own, which this network refuses). Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "install-browser: installing Debian's chromium" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

if [ -n "${VIRTUAL_ENV:-}" ]; then
  python="$VIRTUAL_ENV/bin/python"
else
  python="${GATEWAY_VENV:-.venv}/bin/python"
fi
if [ ! -x "$python" ]; then
  # No venv yet: `./dev test` will make one, with playwright from the `test` extras.
  echo "install-browser: no venv at ${python%/bin/python} yet; playwright not installed" >&2
elif ! "$python" -c "import playwright.async_api" 2>/dev/null; then
  echo "install-browser: installing playwright into ${python%/bin/python}" >&2
  "$python" -m pip install --quiet "playwright>=1.50,<2"
fi
