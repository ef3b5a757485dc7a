#!/usr/bin/env bash
# Stop the test registry started by scripts/registry-up.sh (only that process: the one named in its pid
# file whose command line serves /etc/podline-registry/config.yml). Its storage is kept; pass --purge to
# remove /var/lib/podline-registry too. Safe to run when it is not running.
set -euo pipefail
CONF=/etc/podline-registry/config.yml
PID_FILE=/run/podline-registry.pid
STORAGE=/var/lib/podline-registry

pid=$(cat "$PID_FILE" 2>/dev/null || true)
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ] \
    && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "serve $CONF"; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "registry-down: stopped the registry (pid $pid)" >&2
else
    echo "registry-down: the registry is not running" >&2
fi
rm -f "$PID_FILE"
if [ "${1:-}" = --purge ]; then
    rm -rf "$STORAGE"
    echo "registry-down: removed $STORAGE" >&2
fi
