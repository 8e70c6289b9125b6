#!/usr/bin/env bash
# The test command: installs what the tests need, then runs the whole suite.
#
# The browser test (tests/browser.rs) drives headless Chromium through
# chromedriver; on Debian and Ubuntu those are the `chromium` and
# `chromium-driver` packages. The PostgreSQL tests start their own throwaway
# server (tests/common/pg.rs) from the `postgresql` package's binaries, and
# the Redis tests their own throwaway `redis-server` (tests/common/redis.rs);
# tests/cluster_script.rs runs scripts/cluster.sh, which adds `haproxy`;
# tests/readme.rs runs the README's commands, which use `curl` and `jq`. No
# package's own service is started. All are installed here when missing
# (with sudo when not root). Arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

# initdb is not on PATH in Debian's package: look where it installs.
have_postgres() {
    command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing+=(chromium chromium-driver)
# tests/readme.rs runs the README's tour, which uses curl and jq.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: the tests need ${missing[*]} (Debian/Ubuntu package names: the PostgreSQL" \
             "server binaries, redis-server, haproxy, Chromium and its chromedriver, curl, jq); install them with" \
             "your package manager" >&2
        exit 1
    fi
    echo "==> installing ${missing[*]} (for the PostgreSQL, Redis, cluster and browser tests; no service is started)"
    $sudo apt-get update
    # policy-rc.d 101: the packages' post-install scripts must not start a
    # system-wide PostgreSQL, Redis or HAProxy; the tests run their own.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    if [ -n "$own_policy" ]; then
        $sudo rm -f /usr/sbin/policy-rc.d
    fi
fi

# Pass 1: the whole suite on SQLite, as a default install runs. It includes
# the store contract suites (tests/store_*.rs), which run every contract on
# both backends already, and tests/http_outage.rs and tests/cluster.rs (several
# real instances on one database), which are PostgreSQL always.
echo "==> test pass 1 of 2: the whole suite, HTTP tests on SQLite"
cargo test "$@"

# Pass 2: the HTTP-level suites again with TestApp and the CLI on PostgreSQL
# (tests/common/mod.rs), one fresh database per test. Same command and flags
# as pass 1, so cargo reuses its test binaries and builds nothing.
# Not here: tests/browser.rs, which drives Chromium through the same TestApp
# and the same pages as tests/web.rs (run here on PostgreSQL); what it adds
# is the browser side (scripts, forms, layout), which does not depend on the
# database, and its Chromium sessions are the slowest tests of the suite.
echo "==> test pass 2 of 2: the HTTP-level suites on PostgreSQL (LATCHKEY_TEST_BACKEND=postgres)"
LATCHKEY_TEST_BACKEND=postgres cargo test \
    --test api_keys --test api_resources --test repairshopr --test web --test cli --test legacy \
    --test roll --test restrictions --test ratelimit --test redis_limits --test usage --test setup --test smoke --test openapi \
    --test key_ops \
    "$@"
