# Shared by the scripts/*-up.sh scripts (sourced, not run): log lines prefixed with the script's name,
# die with the tail of a log, and ask dpkg whether a package is installed. Set SCRIPT before sourcing.

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
