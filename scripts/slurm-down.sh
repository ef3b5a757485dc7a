#!/usr/bin/env bash
# Stop the test cluster started by slurm-up.sh (and slurm-nodes-up.sh): test hosts, slurmd, slurmctld, munged.
# Each gets SIGTERM (slurmctld saves its state: queued jobs are still there after slurm-up.sh) and
# up to 10 s before SIGKILL. Configuration, munge key, state and logs stay. Safe to run when nothing
# runs. Batch jobs already running keep running under their slurmstepd (as Slurm does by design) and
# report to slurmd when it comes back; `scancel` them first for a truly empty machine.
set -u

log() { echo "slurm-down: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

. "$(dirname "$(readlink -f "$0")")/slurm-daemons.sh"  # daemon_pid, stop_daemon

rc=0
# The test hosts of slurm-nodes-up.sh first: everything in their network namespaces (slurmd and jobs).
for node in $(ip netns list 2>/dev/null | awk '/^pl-n[0-9]+/ {print $1}'); do
    log "stopping test host $node"
    ip netns pids "$node" | xargs -r kill -9 || rc=1
done
stop_daemon slurmd /run/slurmd.pid || rc=1
stop_daemon slurmctld /run/slurmctld.pid || rc=1
stop_daemon munged /run/munge/munged.pid || rc=1
exit "$rc"
