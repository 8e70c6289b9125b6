#!/usr/bin/env bash
# The test command: installs what the tests need, then runs the whole suite.
#
# The browser test (tests/browser.rs) drives headless Chromium through
# chromedriver; on Debian and Ubuntu those are the `chromium` and
# `chromium-driver` packages, installed here when missing (with sudo when not
# root). Arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: the browser test needs /usr/bin/chromium and /usr/bin/chromedriver;" \
             "install Chromium and its chromedriver with your package manager" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "==> installing chromium and chromium-driver (for the browser test)"
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver
fi

exec cargo test "$@"
