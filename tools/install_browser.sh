#!/usr/bin/env bash
# Install the browser that tests/test_browser.py drives: Debian's chromium.
#
# Idempotent: does nothing when `chromium` is already on PATH. Never downloads a browser of
# Playwright's own (`playwright install` cannot work on machines without internet access);
# the test launches the system chromium through Playwright's `executable_path`.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "install_browser: $(command -v chromium) is already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: chromium is missing and apt-get is not available;" \
        "install Chromium with your system's package manager" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium

command -v chromium >/dev/null 2>&1 || {
    echo "install_browser: apt-get finished but chromium is not on PATH" >&2
    exit 1
}
echo "install_browser: installed $(chromium --version 2>/dev/null || command -v chromium)"
