# Sourced by slurm-up.sh and slurm-down.sh: find and stop the test cluster's daemons (needs a `log` function).

# pid of a running daemon: from its pid file if that process has the right name, else by exact name;
# only processes of this network namespace (the test hosts of slurm-nodes-up.sh run slurmds of their own).
daemon_pid() { # name pidfile
    local pid here
    here=$(readlink /proc/self/ns/net)
    pid=$(cat "$2" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] \
            && [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$here" ]; then
        echo "$pid"
        return 0
    fi
    for pid in $(pgrep -x "$1"); do
        [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$here" ] && { echo "$pid"; return 0; }
    done
    return 1
}

# SIGTERM, up to 10 s, then SIGKILL; returns 1 only if the process is still there after that.
stop_daemon() { # name pidfile
    local pid
    pid=$(daemon_pid "$1" "$2") || { log "$1 is not running"; return 0; }
    log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "$1 (pid $pid) ignored SIGTERM for 10 s; killing it"
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "$1 (pid $pid) is still there"
    return 1
}
