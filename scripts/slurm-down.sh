#!/usr/bin/env bash
# Stop the single-node test cluster started by slurm-up.sh: slurmd, then slurmctld, then munged.
# Each gets SIGTERM (slurmctld saves its state: queued jobs are still there after slurm-up.sh) and
# up to 10 s before SIGKILL. Configuration, munge key, state and logs stay. Safe to run when nothing
# runs. Batch jobs already running keep running under their slurmstepd (as Slurm does by design) and
# report to slurmd when it comes back; `scancel` them first for a truly empty machine.
set -u

log() { echo "slurm-down: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

daemon_pid() { # name pidfile: from the pid file if that process has the right name, else by exact name
    local pid
    pid=$(cat "$2" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then
        echo "$pid"
        return 0
    fi
    pgrep -o -x "$1"
}
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

rc=0
stop_daemon slurmd /run/slurmd.pid || rc=1
stop_daemon slurmctld /run/slurmctld.pid || rc=1
stop_daemon munged /run/munge/munged.pid || rc=1
exit "$rc"
