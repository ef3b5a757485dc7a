#!/usr/bin/env bash
# A real OCI registry for the image tests, as root on a fresh Debian 12 machine, idempotently: Debian's
# `docker-registry` (CNCF distribution 2.8) serving 127.0.0.1:5000 over plain HTTP, anonymous, with its
# filesystem storage under /var/lib/podline-registry. Tests fill it with `skopeo copy` from OCI layouts
# they build offline (tests/imagebuild.py); nothing is downloaded.
#
# Installs what is missing: docker-registry, skopeo, busybox-static (the test images' payload),
# bubblewrap (the container runtime), apache2-utils (htpasswd -B for the basic-auth test), curl and
# openssl (the token-auth test signs its JWTs with it). The package's own service is kept from starting
# (temporary policy-rc.d) and /etc/docker/registry/config.yml is not used: we write our own config to
# /etc/podline-registry/config.yml and start `docker-registry serve` directly (no systemd here), pid in
# /run/podline-registry.pid, log in /var/log/podline-registry.log. Re-running with it up changes nothing;
# it is restarted only when its config changed or it stopped answering. Exits non-zero with
# `registry-up: ERROR: ...` when it cannot start. Undo with scripts/registry-down.sh; see
# scripts/README-registry.md.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

CONF_DIR=/etc/podline-registry
CONF=$CONF_DIR/config.yml
STORAGE=/var/lib/podline-registry
PID_FILE=/run/podline-registry.pid
LOG_FILE=/var/log/podline-registry.log
ADDR=127.0.0.1:5000

SCRIPT=registry-up
. "$(dirname "$(readlink -f "$0")")/common.sh"  # log, die, installed

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts the registry)"

# --- packages -------------------------------------------------------------------------------------
missing=()
for pkg in docker-registry skopeo busybox-static bubblewrap apache2-utils curl openssl; do
    installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    apt_install_quietly "${missing[@]}"  # docker-registry's postinst would start the system registry
fi
command -v docker-registry >/dev/null || die "docker-registry is not installed"
command -v skopeo >/dev/null || die "skopeo is not installed"

# --- config -----------------------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR" "$STORAGE"
new_conf=$(cat <<YAML
# Written by scripts/registry-up.sh: the podline test registry (anonymous, plain HTTP, loopback only).
version: 0.1
log:
  level: warn
  fields:
    service: podline-registry
storage:
  filesystem:
    rootdirectory: $STORAGE
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $ADDR
  headers:
    X-Content-Type-Options: [nosniff]
YAML
)
conf_changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
    printf '%s\n' "$new_conf" > "$CONF"
    conf_changed=1
fi

# --- the process ------------------------------------------------------------------------------------
# Ours only if the pid file names a docker-registry serving our config.
registry_pid() {
    local pid
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ] \
        && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "serve $CONF" && echo "$pid"
}
answers() { curl -fs -m 2 -o /dev/null "http://$ADDR/v2/"; }
stop_ours() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

if pid=$(registry_pid); then
    if [ "$conf_changed" = 1 ]; then
        log "restarting the registry (pid $pid): its config changed"
        stop_ours "$pid"
    elif ! answers; then
        log "restarting the registry (pid $pid): it does not answer on $ADDR"
        stop_ours "$pid"
    fi
fi
if ! registry_pid >/dev/null; then
    answers && die "something else already answers on $ADDR (not started by this script); stop it first"
    setsid docker-registry serve "$CONF" >>"$LOG_FILE" 2>&1 < /dev/null &
    echo $! > "$PID_FILE"
fi
for _ in $(seq 100); do answers && break; registry_pid >/dev/null || break; sleep 0.1; done
registry_pid >/dev/null || die "docker-registry exited" "$LOG_FILE"
answers || die "docker-registry does not answer on http://$ADDR/v2/" "$LOG_FILE"
log "registry up on http://$ADDR (storage $STORAGE)"
