#!/usr/bin/env bash
# Install what the console's browser tests (tests/console/) need beside the lock's `playwright`
# (which `./dev test` installs): Debian's `chromium` package (/usr/bin/chromium), from apt.
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

# Build fontconfig's cache now: without it the first page Chromium draws builds it, which took
# more than the tests' 10 s wait on this 2-core host (the first browser test after a fresh
# install timed out; with the cache built, 14 runs in 14 passed). Quick when the cache is current.
fc-cache -s
