#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this (Debian) machine, as root, idempotently.
#
# Installs slurm-wlm and munge from Debian if missing, writes /etc/slurm/slurm.conf sized from nproc/free
# (select/cons_tres, proctrack/linuxproc, task/none, munge auth, no cgroups: none are usable in this
# sandbox), starts munged, slurmctld and slurmd as plain background daemons (there is no systemd), and
# waits until the node is idle. Re-running with everything up changes nothing. Exit 1 with a reason if
# Slurm cannot start. Used by .ci/run before the tests; tests skip Slurm cases with the reason if it fails.
set -euo pipefail

log() { echo "slurm-up: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
real_mb=$(( mem_mb - (mem_mb / 10 > 512 ? mem_mb / 10 : 512) ))

install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key

install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
install -d -m 0755 /var/spool/slurmd /etc/slurm

conf=$(cat <<CONF
# Written by podline scripts/slurm-up.sh: a single-node test cluster.
ClusterName=podline
SlurmctldHost=${host}(127.0.0.1)
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=2000,max_array_tasks=20000
MaxArraySize=20001
MaxJobCount=100000
MinJobAge=300
KillWait=5
InactiveLimit=0
ReturnToService=2
MpiDefault=none
SlurmdTimeout=300
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
changed=0
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
    printf '%s\n' "$conf" > /etc/slurm/slurm.conf
    changed=1
fi
# Slurm 22.05 has no "disabled" cgroup plugin; without cgroup.conf slurmd autodetects and, with
# proctrack/linuxproc and task/none, uses no cgroups at all.
rm -f /etc/slurm/cgroup.conf

if ! pgrep -x munged >/dev/null; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
fi
if [ "$changed" = 1 ]; then
    pkill -x slurmd || true
    pkill -x slurmctld || true
    for _ in $(seq 50); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.1; done
fi
if ! pgrep -x slurmctld >/dev/null; then
    log "starting slurmctld"
    /usr/sbin/slurmctld -i || die "slurmctld did not start; see /var/log/slurm/slurmctld.log"
fi
if ! pgrep -x slurmd >/dev/null; then
    log "starting slurmd"
    /usr/sbin/slurmd || die "slurmd did not start; see /var/log/slurm/slurmd.log"
fi

for _ in $(seq 120); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mixed|allocated|completing) log "node $host is $state"; exit 0 ;;
        down*|drain*|fail*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
die "node $host did not become idle (state: ${state:-unknown}); see /var/log/slurm/"
