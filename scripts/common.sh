# Shared by the scripts/*-up.sh scripts (sourced, not run): log lines prefixed with the script's name,
# die with the tail of a log, ask dpkg whether a package is installed, install packages quietly. Set
# SCRIPT before sourcing.

log() { echo "${SCRIPT:-podline}: $*" >&2; }

die() { # message [log file to show]
    log "ERROR: $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        log "last lines of $2:"
        tail -n 15 "$2" >&2 || true
    fi
    exit 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt_install_quietly PKG...: install from Debian without letting the packages' postinst start their system
# services (we start our own instances, with our own configs): a temporary policy-rc.d says no.
apt_install_quietly() {
    export DEBIAN_FRONTEND=noninteractive
    local policy_made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        policy_made=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    { apt-get update -qq && apt-get install -y -qq -o Dpkg::Use-Pty=0 "$@" >/dev/null; } \
        || die "apt-get install $* failed"
    if [ "$policy_made" = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
}
