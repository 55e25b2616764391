#!/bin/sh
# Debian ships `venv` separately (python3-venv); install it when it is missing and we can.
set -eu
PY="${1:-python3}"
if "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3-venv (missing) ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }
else
    echo "error: $PY cannot create a virtualenv; install python3-venv" >&2
    exit 1
fi
