#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages Parley needs, and only those missing. Idempotent.
# Usage: scripts/install-deps.sh [build|test|bench]   (each set includes the ones before it)
set -eu

set_name=${1:-build}

build_pkgs="gcc make pkg-config meson ninja-build libuv1-dev libssl-dev libexpat1-dev libidn-dev libsqlite3-dev openssl"
test_pkgs="libcmocka-dev clang libclang-rt-14-dev clang-format python3 python3-pytest python3-slixmpp python3-openssl python3-aiosasl biboumi procps iproute2 go-sendxmpp prosody"
bench_pkgs="ejabberd erlang-p1-sqlite3"

case "$set_name" in
build) want="$build_pkgs" ;;
test) want="$build_pkgs $test_pkgs" ;;
bench) want="$build_pkgs $test_pkgs $bench_pkgs" ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "Installing missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "These packages are missing and I am not root:$missing" >&2
        echo "Run as root: apt-get install -y$missing" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# Daemons from these packages (prosody, ejabberd, biboumi) must not start as system
# services: the tests and benchmarks start private instances themselves.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    created_policy=1
fi
status=0
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -q --no-install-recommends $missing || status=$?
[ "$created_policy" = 1 ] && $SUDO rm -f "$policy"
if [ "$status" -ne 0 ]; then
    echo "apt-get could not install:$missing" >&2
    echo "Check the network access to Debian's mirrors and run: apt-get install -y$missing" >&2
    exit 1
fi
